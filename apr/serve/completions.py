"""``POST /v1/completions`` and ``/v1/chat/completions`` on the embedded engine: each request is one
session of one shared backend.

Requests never wait for each other: a request's call joins the engine batch that every other live
request (and every ``/v1/apr/solve`` thread) is decoding in, at the next step. Responses follow
OpenAI's completion and chat completion objects plus what vLLM adds for APR clients:
``stop_reason`` (the matched stop string, None for EOS) and
``usage.prompt_tokens_details.cached_tokens`` (prompt tokens served from the prefix cache). With
``stream: true`` the text arrives as server-sent events in OpenAI's chunk format; text that could
still turn out to be the start of a stop string is held back until it cannot.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from itertools import accumulate
from typing import Any, AsyncIterator, Callable

from apr.runtime.backend import Generation
from apr.runtime.embedded import EmbeddedBackend
from apr.serve.errors import APIError
from apr.serve.prefix import PrefixCache
from apr.serve.schemas import ChatCompletionRequest, CompletionRequest

_FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length"}


class Completer:
    def __init__(self, backend: EmbeddedBackend, model_name: str, cache_capacity: int):
        self.backend = backend
        self.model_name = model_name
        self.cache = PrefixCache(backend, cache_capacity)
        self.longest_token = max(1, *map(len, backend.codec.token_bytes))

    def chat_prompt(self, req: ChatCompletionRequest) -> str:
        """The prompt for a chat: the tokenizer's chat template, or (a model without one, like ours)
        the messages' contents one after another, a newline between."""
        tokenizer = self.backend.codec.tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([m.model_dump() for m in req.messages], tokenize=False,
                                                 add_generation_prompt=True)
            bos = tokenizer.bos_token or ""
            return text[len(bos):] if bos and text.startswith(bos) else text  # the encoder adds BOS
        return "\n".join(m.content for m in req.messages)

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

    async def generate(self, req: CompletionRequest, ids: list[int],
                       on_text: Callable[[str], None] | None = None) -> Generation:
        """Decode one request. ``max_tokens`` past the window is not an error: the call stops there."""
        session = f"req-{uuid.uuid4().hex}"
        room = self.backend.context_length - len(ids)
        params = req.sampling(min(req.max_tokens or room, room))
        try:
            gen = await self.backend.generate(session, req.prompt, params, fork_from=self.cache.best(ids),
                                              on_text=on_text, prompt_ids=ids)
        except BaseException:  # cancelled (client gone) or failed: its sequence is freed now
            self.backend.release(session)
            raise
        self.cache.keep(session, ids + gen.token_ids)
        return gen

    # -- whole responses ---------------------------------------------------------------------------
    def visible(self, req: CompletionRequest, gen: Generation) -> tuple[str, str | None]:
        """The generated text the client sees (the stop string trimmed unless asked for) and the stop
        that matched; ``echo`` puts the prompt before it."""
        text, stop_reason = gen.text, None
        if gen.finish_reason == "stop":
            stop_reason = max((s for s in req.stop if text.endswith(s)), key=len)
            if not req.keep_stop:
                text = text[: -len(stop_reason)]
        return text, stop_reason

    def response(self, req: CompletionRequest, gen: Generation) -> dict[str, Any]:
        text, stop_reason = self.visible(req, gen)
        chat = isinstance(req, ChatCompletionRequest)
        choice: dict[str, Any] = {"index": 0, "finish_reason": _FINISH[gen.finish_reason], "stop_reason": stop_reason}
        if chat:
            choice |= {"message": {"role": "assistant", "content": text},
                       "logprobs": self._chat_logprobs(gen) if req.wants_logprobs else None}
        else:
            choice |= {"text": req.prompt + text if req.echo else text,
                       "logprobs": self._logprobs(gen) if req.wants_logprobs else None}
        n_out = len(gen.token_ids)
        return {
            **self._envelope(chat, streamed=False), "choices": [choice],
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": n_out,
                      "total_tokens": gen.prompt_tokens + n_out,
                      "prompt_tokens_details": {"cached_tokens": gen.cached_tokens}},
        }

    def _envelope(self, chat: bool, streamed: bool, id: str | None = None) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if streamed else "chat.completion") if chat else "text_completion"
        prefix = "chatcmpl" if chat else "cmpl"
        return {"id": id or f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                "model": self.model_name}

    def _pieces(self, gen: Generation) -> list[str]:
        return [self.backend.codec.token_bytes[t].decode("utf-8", errors="replace") for t in gen.token_ids]

    def _logprobs(self, gen: Generation) -> dict[str, Any]:
        """OpenAI's legacy logprobs object; ``top_logprobs`` is None (only sampled tokens are scored)."""
        pieces = self._pieces(gen)
        offsets = [0, *accumulate(len(p) for p in pieces)][:-1]
        return {"tokens": pieces, "token_logprobs": gen.logprobs, "text_offset": offsets, "top_logprobs": None}

    def _chat_logprobs(self, gen: Generation) -> dict[str, Any]:
        return {"content": [{"token": p, "logprob": lp, "bytes": list(p.encode()), "top_logprobs": []}
                            for p, lp in zip(self._pieces(gen), gen.logprobs or [])]}

    # -- streaming ----------------------------------------------------------------------------------
    async def stream(self, req: CompletionRequest, ids: list[int]) -> AsyncIterator[str]:
        """Server-sent events: text deltas as the engine decodes, then the finish reason, then [DONE].

        Leaving early (the client went away) cancels the call, which frees its sequence.
        """
        chat = isinstance(req, ChatCompletionRequest)
        envelope = self._envelope(chat, streamed=True)
        hold = max((len(s) for s in req.stop), default=1) - 1 if not req.keep_stop else 0
        texts: asyncio.Queue[str] = asyncio.Queue()
        call = asyncio.ensure_future(self.generate(req, ids, on_text=texts.put_nowait))
        sent, first = 0, True

        def event(delta: str, finish: str | None = None, stop_reason: str | None = None) -> str:
            nonlocal first
            if chat:  # the role comes with the first delta, OpenAI's way
                body: dict[str, Any] = {"content": delta} if delta or finish is None else {}
                choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", **body} if first else body}
            else:
                choice = {"index": 0, "text": req.prompt + delta if req.echo and first else delta, "logprobs": None}
            first = False
            choice |= {"finish_reason": finish, "stop_reason": stop_reason}
            return f"data: {json.dumps({**envelope, 'choices': [choice]})}\n\n"

        try:
            while not call.done():
                getter = asyncio.ensure_future(texts.get())
                await asyncio.wait({getter, call}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                text = getter.result()
                safe = len(text) - hold
                if not req.keep_stop:  # a stop string that just completed is never sent
                    safe = min([safe, *(i for s in req.stop if (i := text.find(s)) >= 0)])
                if safe > sent:
                    yield event(text[sent:safe])
                    sent = safe
            try:
                gen = call.result()
            except Exception as e:  # the response has started: the failure goes in the stream
                message = {"error": {"message": f"internal error: {type(e).__name__}: {e}", "type": "server_error",
                                     "param": None, "code": "internal_error"}}
                yield f"data: {json.dumps(message)}\n\n"
                return
            text, stop_reason = self.visible(req, gen)
            yield event(text[sent:], _FINISH[gen.finish_reason], stop_reason)
            yield "data: [DONE]\n\n"
        finally:
            call.cancel()
