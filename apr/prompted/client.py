"""One OpenAI-compatible chat endpoint, with every way a call can fail turned into ``CallFailed``.

The orchestrator only needs text and token counts back, and one exception type to decide on a
fallback. Retries happen only where the server did no work (it could not be reached, or said
429/502/503 before generating): a timed-out call is never re-sent, because the server may still
be decoding it and a second copy would double the load and blow the caller's wall-clock budget.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI

RETRY_STATUS = (429, 502, 503)  # the server refused before generating anything


class PromptedError(Exception):
    """An error the CLI reports as one line (no traceback)."""


class CallFailed(PromptedError):
    """A model call did not produce usable text; ``kind`` names why (and becomes a finish_reason)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # timeout, unreachable, http, refusal, empty, budget


@dataclass(frozen=True)
class ClientConfig:
    model: str = ""  # empty: whatever the server serves, if it serves exactly one model
    base_url: str | None = None  # None: the openai package's default (OPENAI_BASE_URL or api.openai.com)
    api_key: str | None = None  # None: OPENAI_API_KEY, else "EMPTY" (local servers accept any key)
    timeout: float = 120.0  # seconds per call, retries included
    retries: int = 2  # extra attempts, only for failures where the server did no work


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # as the server said: stop, length, ...
    seconds: float
    usage_estimated: bool = False  # the server sent no usage; counts are characters / 4


class ChatClient:
    """Sends chat requests to one server; safe to use from many coroutines at once."""

    def __init__(self, config: ClientConfig):
        self.config = config
        # Retries are ours (see module docstring), so the package's own are off.
        api_key = config.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._api = AsyncOpenAI(base_url=config.base_url, api_key=api_key, max_retries=0)
        self.context_window: int | None = None  # learnt by resolve_model when the server reports it

    @property
    def where(self) -> str:
        return str(self._api.base_url).rstrip("/")

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._api.close()

    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float | None = None,
                   timeout: float | None = None, response_format: dict | None = None) -> Reply:
        """One completion; ``timeout`` (default: the config's) bounds the call, retries included."""
        start = time.monotonic()
        deadline = start + (self.config.timeout if timeout is None else timeout)
        extra: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
        if response_format is not None:
            extra["response_format"] = response_format
        attempt = 0
        while True:
            try:
                response = await asyncio.wait_for(
                    self._api.chat.completions.create(
                        model=self.config.model, messages=messages, max_tokens=max_tokens, **extra),
                    timeout=deadline - time.monotonic())
                return _reply(response, messages, time.monotonic() - start)
            except (asyncio.TimeoutError, openai.APIError) as e:
                pause = 0.25 * 2**attempt
                if not _server_did_no_work(e) or attempt == self.config.retries \
                        or time.monotonic() + pause >= deadline:
                    raise self._failure(e, deadline - start) from None
            await asyncio.sleep(pause)
            attempt += 1

    async def resolve_model(self) -> str:
        """The configured model, or else the server's only one (vLLM, SGLang, llama.cpp serve one)."""
        if self.config.model:
            if self.context_window is None:
                self.context_window = await self._window(await self._card(self.config.model))
            return self.config.model
        try:
            page = await asyncio.wait_for(self._api.models.list(), timeout=self.config.timeout)
        except (asyncio.TimeoutError, openai.APIError) as e:
            raise self._failure(e, self.config.timeout) from None
        served = [m.id for m in page.data]
        if len(served) != 1:
            listed = ", ".join(served[:20]) or "none"
            raise PromptedError(f"name the model with --model or APR_MODEL; {self.where} serves: {listed}")
        self.config = replace(self.config, model=served[0])
        self.context_window = await self._window(page.data[0])
        return served[0]

    async def _card(self, model: str) -> Any:
        """The server's listing of ``model``, if it lists models at all (OpenAI's and most local ones do)."""
        try:
            page = await asyncio.wait_for(self._api.models.list(), timeout=min(5.0, self.config.timeout))
        except (asyncio.TimeoutError, openai.APIError):
            return None
        return next((m for m in page.data if m.id == model), None)

    async def _window(self, card: Any) -> int | None:
        """The model's context window as the server reports it: vLLM's and apr serve's ``max_model_len``,
        else llama-server's per-slot ``n_ctx`` (``/props``); None when the server says nothing."""
        reported = (getattr(card, "model_extra", None) or {}).get("max_model_len")
        if isinstance(reported, int) and reported > 0:
            return reported
        root = self.where.removesuffix("/v1")
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                props = (await http.get(f"{root}/props")).json()
        except (httpx.HTTPError, ValueError):
            return None
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") if isinstance(props, dict) else None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None

    def _failure(self, e: Exception, waited: float) -> CallFailed:
        if isinstance(e, (asyncio.TimeoutError, openai.APITimeoutError)):
            return CallFailed("timeout", f"no reply from {self.where} within {waited:.1f} s")
        if isinstance(e, openai.APIConnectionError):
            return CallFailed("unreachable", f"cannot reach {self.where}: {e}")
        if isinstance(e, openai.APIStatusError):
            return CallFailed("http", f"HTTP {e.status_code} from {self.where}: {_message(e)}")
        return CallFailed("http", f"unusable response from {self.where}: {e}")


def _server_did_no_work(e: Exception) -> bool:
    """True where re-sending cannot duplicate generation: no connection, or an early refusal."""
    if isinstance(e, openai.APITimeoutError):  # a subclass of APIConnectionError
        return False
    if isinstance(e, openai.APIConnectionError):
        return True
    return isinstance(e, openai.APIStatusError) and e.status_code in RETRY_STATUS


def _reply(response: Any, messages: list[dict[str, str]], seconds: float) -> Reply:
    if not response.choices:
        raise CallFailed("empty", "the server returned no choices")
    choice = response.choices[0]
    refusal = getattr(choice.message, "refusal", None)
    if refusal or choice.finish_reason == "content_filter":
        raise CallFailed("refusal", f"the model refused: {refusal or 'content filter'}")
    text = choice.message.content or ""
    if not text.strip():
        raise CallFailed("empty", "the model returned an empty reply")
    finish = choice.finish_reason or "stop"
    usage = response.usage
    if usage is None:  # rough but better than zero: ~4 characters per token
        prompt_chars = sum(len(m["content"]) for m in messages)
        return Reply(text, prompt_chars // 4, len(text) // 4, finish, seconds, usage_estimated=True)
    return Reply(text, usage.prompt_tokens, usage.completion_tokens, finish, seconds)


def _message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        body = body.get("message", body)
    return str(body or e.message)[:300]
