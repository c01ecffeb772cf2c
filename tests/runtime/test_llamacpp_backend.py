"""The llama-server backend against a loopback server that answers like llama-server's ``/completion``
(the real one is exercised in tests/serve/test_llamacpp.py), and ``open_remote`` choosing it."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, Request

from apr import grammar as g
from apr.runtime.backend import SamplingParams
from apr.runtime.codec import TokenCodec
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.runtime.openai_backend import OpenAIBackend
from apr.runtime.remote import open_remote
from tests.loopback import Loopback


@pytest.fixture(scope="module")
def codec(tok):
    return TokenCodec(tok)


def fake_llama_server(codec: TokenCodec, seen: list, reply: dict | None = None) -> FastAPI:
    """Writes a spawn block for prompts ending in '#0', then stops on the stop word as llama-server
    does (the stop word trimmed from ``content``, its tokens kept in ``tokens``); EOS otherwise."""
    app = FastAPI()

    @app.get("/props")
    async def props():
        return {"default_generation_settings": {"n_ctx": 256}, "total_slots": 2}

    @app.post("/completion")
    async def completion(request: Request):
        body = await request.json()
        seen.append(body)
        if reply is not None:
            return reply
        prompt = codec.decode(body["prompt"])
        if prompt.endswith("#0"):
            text, stop = f"\n{g.SPAWN_OPEN}\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n{g.SPAWN_CLOSE}", "word"
            tokens = codec.encode(text, bos=False)
        else:
            text, stop = "\n27,27 equal: Goal Reached\n", "eos"
            tokens = codec.encode(text, bos=False) + [codec.eos_token_id]
        tokens = tokens[: body["n_predict"]]
        if len(tokens) == body["n_predict"]:
            stop = "limit"
        return {"content": text.removesuffix(g.SPAWN_CLOSE), "tokens": tokens, "stop_type": stop,
                "stopping_word": g.SPAWN_CLOSE if stop == "word" else "", "truncated": False,
                "tokens_evaluated": len(body["prompt"]), "timings": {"cache_n": 3}}

    return app


def generate(backend, prompt: str, params: SamplingParams):
    async def run():
        try:
            return await backend.generate("s", prompt, params)
        finally:
            await backend.aclose()
    return asyncio.run(run())


def test_token_ids_go_out_and_come_back_with_the_stop_word(codec):
    seen: list = []
    with Loopback(fake_llama_server(codec, seen)) as server:
        params = SamplingParams(max_tokens=100, stop=(g.SPAWN_CLOSE,), seed=2**40 + 5)
        spawn = generate(LlamaCppBackend(server.base, codec, 256), "Moving to Node #0", params)
        end = generate(LlamaCppBackend(server.base, codec, 256), "Moving to Node #1", params)
        capped = generate(LlamaCppBackend(server.base, codec, 256), "Moving to Node #1", SamplingParams(max_tokens=3))
    assert spawn.finish_reason == "stop" and spawn.text.endswith(g.SPAWN_CLOSE)
    assert spawn.token_ids == codec.encode(spawn.text, bos=False) and spawn.cached_tokens == 3
    assert end.finish_reason == "eos" and end.token_ids[-1] == codec.eos_token_id and not end.text.endswith("</s>")
    assert capped.finish_reason == "length" and len(capped.token_ids) == 3
    request = seen[0]
    assert request["prompt"] == codec.encode("Moving to Node #0")  # our ids, BOS included
    assert request["samplers"] == ["top_k", "top_p", "temperature"]  # no repeat penalty, min-p, DRY, XTC
    assert request["temperature"] == 0.0 and request["seed"] == 5 and request["return_tokens"] is True


def test_the_window_caps_what_is_asked_for(codec):
    seen: list = []
    with Loopback(fake_llama_server(codec, seen)) as server:
        full = generate(LlamaCppBackend(server.base, codec, 8), "Moving to Node #1 and on and on", SamplingParams())
        n_seen = len(seen)
        window = len(codec.encode("Moving to Node #1")) + 3
        cut = generate(LlamaCppBackend(server.base, codec, window), "Moving to Node #1", SamplingParams())
    assert full.finish_reason == "context" and n_seen == 0  # nothing sent: no room
    assert cut.finish_reason == "context" and seen[-1]["n_predict"] == 3


@pytest.mark.parametrize("reply, why", [
    ({"content": "x"}, "without token ids"),
    ({"content": "", "tokens": [1], "stop_type": "eos", "truncated": True}, "truncated=True"),
    ({"content": "", "tokens": [10**6], "stop_type": "eos"}, "outside this tokenizer"),
    ({"content": "", "tokens": [5], "stop_type": "word", "stopping_word": "<End"}, "do not spell"),
])
def test_a_reply_it_cannot_read_is_an_error_that_says_why(codec, reply, why):
    with Loopback(fake_llama_server(codec, [], reply)) as server:
        gen = generate(LlamaCppBackend(server.base, codec, 256), "Moving", SamplingParams(stop=("<End",)))
    assert gen.finish_reason == "error" and why in gen.extra["error"]


def test_log_probs_with_stop_strings_are_refused(codec):
    backend = LlamaCppBackend("http://127.0.0.1:1", codec, 256)
    with pytest.raises(ValueError, match="log-probs"):
        generate(backend, "x", SamplingParams(logprobs=True, stop=(g.SPAWN_CLOSE,)))


def test_open_remote_picks_llama_server_by_its_props_and_takes_its_window(codec):
    with Loopback(fake_llama_server(codec, [])) as server:
        for url in (server.base, server.url):  # with or without /v1
            backend, name = open_remote(url, codec)
            assert isinstance(backend, LlamaCppBackend) and backend.context_length == 256
            assert name == f"llama-server at {server.base}"
        with pytest.raises(ValueError, match="differs from the 256 tokens"):
            open_remote(server.url, codec, context_length=1024)


def test_open_remote_falls_back_to_the_openai_api(codec):
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x",
                                            "max_model_len": 512}]}

    with Loopback(app) as server:
        backend, name = open_remote(server.url, codec)
    assert isinstance(backend, OpenAIBackend) and backend.context_length == 512 and name.startswith("m at")
