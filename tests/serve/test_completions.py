"""``apr serve``'s OpenAI-compatible API, driven by the official ``openai`` client."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
import torch
from openai import AsyncOpenAI

from apr.models.loading import load_model
from apr.tokenizer import load_tokenizer
from tests.serve.models import CONTEXT, NAME

PROMPTS = [
    "Moving to Node #0\nCurrent State: 27:[22, 26, 31, 53], Operations: []",
    "Current State: 12:[3, 4, 50, 60], Operations: []",
    "Moving to Node #0,1\nCurrent State: 27:[22, 31, 27], Operations: ['53-26=27']",
]


def reference(served, prompt: str, max_tokens: int) -> tuple[str, int, bool]:
    """Greedy ``model.generate`` on the saved checkpoint: text, tokens, whether it ended with EOS.

    The text is decoded the server's way (one UTF-8 stream, invalid bytes replaced one by one):
    HF's byte-fallback decoder replaces a whole run of bytes once any of them is invalid, and a
    random model writes plenty of stray byte tokens.
    """
    tok = load_tokenizer(served.path)
    model = load_model(served.path, tok)
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.eos_token_id)
    new = out[0, ids.shape[1]:].tolist()
    return served.backend.codec.decode(new), len(new), new[-1] == tok.eos_token_id


def test_models_lists_the_served_model_with_its_window(served):
    cards = served.client().models.list().data
    assert [c.id for c in cards] == [NAME]
    assert cards[0].max_model_len == CONTEXT
    health = httpx.get(served.server.base + "/health").json()
    assert health["status"] == "ok" and health["model"] == NAME


def test_greedy_completions_equal_model_generate(served):
    client = served.client()
    for prompt in PROMPTS:
        text, n_tokens, eos = reference(served, prompt, 48)
        r = client.completions.create(model=NAME, prompt=prompt, max_tokens=48, temperature=0)
        choice = r.choices[0]
        assert choice.text == text
        assert r.usage.completion_tokens == n_tokens
        assert r.usage.prompt_tokens == len(load_tokenizer()(prompt)["input_ids"])
        assert choice.finish_reason == ("stop" if eos else "length")


def test_stop_strings_logprobs_and_prefix_cache(served):
    client = served.client()
    free = client.completions.create(model=NAME, prompt=PROMPTS[0], max_tokens=40, temperature=0).choices[0].text
    stop = next(free[i:i + 3] for i in range(8, len(free)) if free[i:i + 3].isascii() and len(free[i:i + 3]) == 3)
    cut = free[: free.index(stop)]
    trimmed = client.completions.create(model=NAME, prompt=PROMPTS[0], max_tokens=40, temperature=0, stop=[stop])
    assert trimmed.choices[0].text == cut and trimmed.choices[0].finish_reason == "stop"
    assert trimmed.choices[0].model_extra["stop_reason"] == stop
    kept = client.completions.create(model=NAME, prompt=PROMPTS[0], max_tokens=40, temperature=0, stop=stop,
                                     logprobs=1, extra_body={"include_stop_str_in_output": True})
    choice = kept.choices[0]
    assert choice.text == cut + stop
    assert len(choice.logprobs.token_logprobs) == len(choice.logprobs.tokens) == kept.usage.completion_tokens
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs)
    # A prompt that extends a finished request reuses its KV cache, like a parent after a join.
    more = client.completions.create(model=NAME, prompt=PROMPTS[0] + free, max_tokens=5, temperature=0)
    assert more.usage.prompt_tokens_details.cached_tokens >= len(load_tokenizer()(PROMPTS[0])["input_ids"])


def test_sampling_is_reproducible_with_a_seed(served):
    client = served.client()
    runs = [client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=24, temperature=1.0,
                                      seed=seed, extra_body={"top_k": 50}).choices[0].text for seed in (7, 7, 8)]
    assert runs[0] == runs[1] != runs[2]


def test_concurrent_requests_decode_in_one_batch(served, monkeypatch):
    """8 requests at once share engine steps: far fewer steps than tokens, and the same greedy text."""
    engine = served.backend.engine
    steps = []
    step = engine.step
    monkeypatch.setattr(engine, "step", lambda *batch: steps.append(1) or step(*batch))
    prompts = [f"Current State: {10 + i}:[{i + 1}, 7, 13, 2], Operations: []" for i in range(8)]

    async def all_at_once():
        async with AsyncOpenAI(base_url=served.server.url, api_key="x", max_retries=0) as client:
            return await asyncio.gather(*(client.completions.create(model=NAME, prompt=p, max_tokens=64, temperature=0)
                                          for p in prompts))

    together = asyncio.run(all_at_once())
    tokens = sum(r.usage.completion_tokens for r in together)
    assert tokens > 8 * 32
    assert len(steps) < tokens / 3  # one at a time would take one step per token
    alone = served.client().completions.create(model=NAME, prompt=prompts[3], max_tokens=64, temperature=0)
    assert alone.choices[0].text == together[3].choices[0].text


@pytest.mark.parametrize("body,status,code", [
    ({"prompt": "1 " * CONTEXT, "max_tokens": 4}, 400, "context_length_exceeded"),
    ({"prompt": "x", "temperature": -1}, 400, "invalid_value"),
    ({"prompt": "x", "n": 2}, 400, "invalid_value"),
    ({"prompt": "x", "stream": True, "logprobs": 1}, 400, "invalid_value"),
    ({"prompt": "x", "logprobs": 5}, 400, "invalid_value"),
    ({"prompt": "x", "stop": [""]}, 400, "invalid_value"),
    ({"max_tokens": 3}, 400, "invalid_value"),
    ({"prompt": "x", "model": "gpt-4"}, 404, "model_not_found"),
])
def test_bad_requests_get_openai_shaped_errors(served, body, status, code):
    r = httpx.post(served.server.url + "/completions", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and error["type"] == "invalid_request_error"


def test_the_openai_client_raises_its_usual_errors(served):
    client = served.client()
    with pytest.raises(openai.BadRequestError, match="maximum context length is 1024"):
        client.completions.create(model=NAME, prompt="1 " * CONTEXT, max_tokens=4)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="other", prompt="x", max_tokens=4)


def test_a_disconnected_client_frees_its_sequence(served):
    health = served.server.base + "/health"
    before = httpx.get(health).json()["requests"]
    with pytest.raises(httpx.ReadTimeout):  # asks for the whole window (~1000 tokens), gives up after 0.3 s
        httpx.post(served.server.url + "/completions", json={"prompt": "x", "temperature": 0}, timeout=0.3)
    deadline = time.monotonic() + 5
    while (requests := httpx.get(health).json()["requests"])["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert requests["running"] == 0
    assert requests["cancelled"] == before["cancelled"] + 1 and requests["finished"] == before["finished"]
    assert not served.backend.engine.has_work()
