"""Chat completions and streaming in ``apr serve``, driven by the official ``openai`` client."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serve.models import NAME
from tests.serve.test_completions import PROMPTS


def test_chat_completions_answer_like_a_completion_of_the_joined_messages(served):
    client = served.client()
    plain = client.completions.create(model=NAME, prompt=PROMPTS[0], max_tokens=24, temperature=0)
    chat = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": PROMPTS[0]}],
                                          max_tokens=24, temperature=0, logprobs=True)
    choice = chat.choices[0]
    assert chat.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content == plain.choices[0].text and choice.finish_reason == plain.choices[0].finish_reason
    assert len(choice.logprobs.content) == chat.usage.completion_tokens == plain.usage.completion_tokens
    two = client.chat.completions.create(model=NAME, max_completion_tokens=8, temperature=0, messages=[
        {"role": "system", "content": "Moving to Node #0"}, {"role": "user", "content": PROMPTS[0].split("\n")[1]}])
    assert two.choices[0].message.content == client.completions.create(
        model=NAME, prompt=PROMPTS[0], max_tokens=8, temperature=0).choices[0].text


@pytest.mark.parametrize("keep", [False, True])
def test_streamed_text_is_the_whole_text_stop_strings_included(served, keep):
    client = served.client()
    free = client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=40, temperature=0).choices[0].text
    stop = next(free[i:i + 3] for i in range(len(free) // 2, len(free))
                if free[i:i + 3].isascii() and len(free[i:i + 3]) == 3 and free[i:i + 3] not in free[:i])
    extra = {"include_stop_str_in_output": keep}
    whole = client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=40, temperature=0, stop=[stop],
                                      extra_body=extra).choices[0]
    chunks = list(client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=40, temperature=0,
                                            stop=[stop], stream=True, extra_body=extra))
    assert len(chunks) > 2  # the text arrives in pieces
    assert "".join(c.choices[0].text for c in chunks) == whole.text
    assert stop not in "".join(c.choices[0].text for c in chunks[:-1]) or keep
    assert chunks[-1].choices[0].finish_reason == "stop" and all(c.choices[0].finish_reason is None for c in chunks[:-1])
    chat = list(client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": PROMPTS[1]}],
                                               max_tokens=40, temperature=0, stop=[stop], stream=True,
                                               extra_body=extra))
    assert chat[0].choices[0].delta.role == "assistant" and chat[0].object == "chat.completion.chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chat) == whole.text


def test_a_stream_the_client_leaves_frees_its_sequence(served):
    health = served.server.base + "/health"
    before = httpx.get(health).json()["requests"]
    with httpx.stream("POST", served.server.url + "/completions",
                      json={"prompt": "x", "temperature": 0, "stream": True}, timeout=30) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))  # decoding has begun
    deadline = time.monotonic() + 5
    while (requests := httpx.get(health).json()["requests"])["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert requests["running"] == 0 and requests["cancelled"] == before["cancelled"] + 1
    assert not served.backend.engine.has_work()


def test_streaming_refuses_what_it_cannot_stream(served):
    r = httpx.post(served.server.url + "/completions", json={"prompt": "x", "stream": True, "logprobs": 1})
    assert r.status_code == 400 and "not streamed" in r.json()["error"]["message"]
    r = httpx.post(served.server.url + "/chat/completions", json={"messages": [], "max_tokens": 2})
    assert r.status_code == 400


def test_apr_ask_reaches_the_chat_endpoint_of_apr_serve(served, tmp_path):
    """The prompted mode's client against our own server: the chat endpoint answers every call it makes."""
    import json

    from typer.testing import CliRunner

    from apr.cli import _register, app

    _register()
    before = httpx.get(served.server.base + "/health").json()["requests"]["finished"]
    out = tmp_path / "run.json"
    result = CliRunner().invoke(app, ["ask", "What is 2+2?", "--backend-url", served.server.url, "--mode",
                                      "sequential", "--max-tokens", "16", "--json", str(out)])
    assert "Traceback" not in result.output
    run = json.loads(out.read_text())
    assert run["tree"]["finish_reason"] in ("stop", "eos", "length")
    assert httpx.get(served.server.base + "/health").json()["requests"]["finished"] > before
