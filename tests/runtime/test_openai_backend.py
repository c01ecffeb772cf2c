"""The OpenAI-compatible backend against a loopback server that behaves like vLLM / SGLang."""

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from apr.runtime.backend import SamplingParams
from apr.runtime.openai_backend import OpenAIBackend
from tests.loopback import Loopback

SPAWN_END = "<End Calling Sub Searches>"


def completions_server(seen: list, reply) -> FastAPI:
    """A ``/v1/completions`` server that records each request body and answers ``reply(body)``:
    a JSONResponse, or ``(choice, usage)`` wrapped in OpenAI's completion object."""
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        seen.append(body)
        answer = reply(body)
        if isinstance(answer, JSONResponse):
            return answer
        choice, usage = answer
        return {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, **choice}], "usage": usage}

    return app


def fake_server(trim_stop: bool, seen: list) -> FastAPI:
    """Answers from the prompt: '...spawn' stops at a spawn block, '...long' runs out of tokens."""
    def reply(body):
        prompt = body["prompt"]
        if "boom" in prompt:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if prompt.endswith("spawn"):
            text, reason, stop_reason = "\n<Calling Sub Searches>\n" + SPAWN_END, "stop", SPAWN_END
            if trim_stop:
                text = text[: -len(SPAWN_END)]
        elif prompt.endswith("long"):
            text, reason, stop_reason = "x" * body["max_tokens"], "length", None
        else:
            text, reason, stop_reason = "\n27,27 equal: Goal Reached\n", "stop", None  # EOS
        logprobs = {"token_logprobs": [-0.5] * 3, "tokens": ["a", "b", "c"], "text_offset": [0, 1, 2],
                    "top_logprobs": None} if body.get("logprobs") else None
        return ({"text": text, "finish_reason": reason, "stop_reason": stop_reason, "logprobs": logprobs},
                {"prompt_tokens": len(prompt), "completion_tokens": len(text), "total_tokens": 0,
                 "prompt_tokens_details": {"cached_tokens": 7}})

    return completions_server(seen, reply)


@pytest.mark.parametrize("trim_stop", [False, True])
def test_stop_strings_are_kept_and_finish_reasons_mapped(trim_stop):
    seen: list = []
    with Loopback(fake_server(trim_stop, seen)) as server:
        backend = OpenAIBackend(server.url, "apr", encode=lambda t: [ord(c) for c in t], context_length=200, max_retries=0)

        async def run():
            params = SamplingParams(max_tokens=50, stop=(SPAWN_END,), logprobs=True)
            spawn = await backend.generate("t0", "Moving to Node #0 spawn", params)
            done = await backend.generate("t0", "Moving to Node #0 then", params)
            cut = await backend.generate("t1", "p" * 180 + "long", params)
            capped = await backend.generate("t1", "short long", SamplingParams(max_tokens=5))
            err = await backend.generate("t2", "boom", params)
            full = await backend.generate("t3", "q" * 250, params)
            await backend.aclose()
            return spawn, done, cut, capped, err, full

        spawn, done, cut, capped, err, full = asyncio.run(run())
    assert spawn.text.endswith(SPAWN_END) and spawn.finish_reason == "stop"
    assert spawn.token_ids == [ord(c) for c in spawn.text]  # counted like the embedded engine
    assert done.finish_reason == "eos" and spawn.cached_tokens == 7 and spawn.logprobs == [-0.5] * 3
    assert cut.finish_reason == "context" and len(cut.text) == 200 - 184  # capped by the window
    assert capped.finish_reason == "length"
    assert err.finish_reason == "error" and "overloaded" in err.extra["error"]
    assert full.finish_reason == "context" and len(seen) == 5  # never sent: no room left
    assert seen[0]["include_stop_str_in_output"] is True and seen[0]["stop"] == [SPAWN_END]


def test_rejects_a_base_url_without_scheme():
    with pytest.raises(ValueError, match="http"):
        OpenAIBackend("localhost:8000/v1", "m", len, 100)


def test_refuses_tempered_log_probs_it_cannot_return():
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", len, 100)
    params = SamplingParams(temperature=0.7, logprobs=True, tempered_logprobs=True)
    with pytest.raises(ValueError, match="raw log-probs"):
        asyncio.run(backend.generate("s", "prompt", params))


def llama_cpp_python_server(seen: list) -> FastAPI:
    """Answers as llama-cpp-python does: the stop string trimmed, no ``stop_reason``, the trimmed stop
    counted in ``completion_tokens`` but EOS not; '...ambiguous' counts tokens no stop string has."""
    def reply(body):
        prompt = body["prompt"]
        if prompt.endswith("spawn"):
            text, counted = "\n<Calling Sub Searches>\n", len("\n<Calling Sub Searches>\n" + SPAWN_END)
        elif prompt.endswith("ambiguous"):
            text, counted = "\nabc", 11
        else:
            text, counted = "\n27,27 equal: Goal Reached\n", len("\n27,27 equal: Goal Reached\n")
        return ({"text": text, "finish_reason": "stop", "logprobs": None},
                {"prompt_tokens": len(prompt), "completion_tokens": counted, "total_tokens": 0})

    return completions_server(seen, reply)


def test_a_stop_string_trimmed_without_a_name_is_restored_from_the_token_count():
    seen: list = []
    with Loopback(llama_cpp_python_server(seen)) as server:
        backend = OpenAIBackend(server.url, "apr", encode=lambda t: [ord(c) for c in t], context_length=500,
                                max_retries=0)

        async def run():
            params = SamplingParams(max_tokens=50, stop=(SPAWN_END, "<Start"))
            out = [await backend.generate("t", f"Moving to Node #0 {end}", params)
                   for end in ("spawn", "then", "ambiguous")]
            await backend.aclose()
            return out

        spawn, done, unreadable = asyncio.run(run())
    assert spawn.finish_reason == "stop" and spawn.text.endswith("\n" + SPAWN_END)
    assert done.finish_reason == "eos" and done.text.endswith("Goal Reached\n")
    assert unreadable.finish_reason == "error" and "counted 7 tokens" in unreadable.extra["error"]
    # llama.cpp's sampling defaults are switched off under every engine's name; top-k off is -1
    assert seen[0]["repeat_penalty"] == seen[0]["repetition_penalty"] == 1.0 and seen[0]["min_p"] == 0.0
    assert seen[0]["top_k"] == -1
