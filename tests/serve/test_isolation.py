"""One request can never hurt another: poison requests beside innocent ones, and bounds on every request."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from apr.serve.app import OFF_LOOP_TOKENS, create_app
from apr.serve.guard import ServePolicy
from apr.serve.schemas import MAX_STOPS
from tests.loopback import Loopback
from tests.serve.models import CONTEXT, NAME, PROBLEM

JSON = {"content-type": "application/json"}
INNOCENT = [{"prompt": f"Current State: {20 + i}:[{i + 2}, 9, 14, 3], Operations: []", "max_tokens": 40,
             "temperature": 0} for i in range(4)]

POISON = [  # (body, status): each arrives while the innocent requests decode
    ({"prompt": "x", "temperature": 1, "top_k": 1e30}, 400),
    ({"prompt": "x", "temperature": 1, "seed": 2**64}, 400),
    ({"prompt": "x", "temperature": 1, "seed": -1}, 400),
    ({"prompt": "x\ud800y"}, 400),
    ({"prompt": "x", "stop": ["a\udc00"]}, 400),
    ({"prompt": "x", "stop": [f"s{i}" for i in range(200_000)]}, 413),
    ({"prompt": "x", "stop": [f"s{i}" for i in range(MAX_STOPS + 1)]}, 400),
    ({"prompt": "x", "stop": ["y" * 10_000]}, 400),
    ({"prompt": "x" * 10_000_000}, 413),
    ({"prompt": "x" * 200_000}, 400),  # under the body limit, over what the window can hold
    ({"prompt": "x", "temperature": 1e-300, "max_tokens": 8}, 200),  # greedy, not NaN sampling
    ({"prompt": "x", "best_of": 3}, 400),
    ({"prompt": "x", "logit_bias": {"5": 100}}, 400),
    ({"prompt": "x", "frequency_penalty": 0.5}, 400),
    ({"prompt": "x", "min_tokens": 4}, 400),
    ({"prompt": "x", "suffix": "z"}, 400),
    ({"prompt": "x", "echo": True, "logprobs": 1}, 400),
]


async def _beside_innocents(url: str, poison: dict) -> tuple[list[httpx.Response], httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        innocent = [asyncio.ensure_future(client.post("/completions", json=b)) for b in INNOCENT]
        await asyncio.sleep(0.05)  # they are decoding now
        # json.dumps escapes lone surrogates as JSON allows ("\ud800"); httpx's json= cannot send them
        bad = await client.post("/completions", content=json.dumps(poison), headers=JSON)
        return list(await asyncio.gather(*innocent)), bad


@pytest.fixture(scope="module")
def alone(served) -> list[str]:
    return [httpx.post(served.server.url + "/completions", json=b, timeout=60).json()["choices"][0]["text"]
            for b in INNOCENT]


@pytest.mark.parametrize("poison,status", POISON, ids=[str(i) for i in range(len(POISON))])
def test_a_poison_request_fails_alone(served, alone, poison, status):
    innocents, bad = asyncio.run(_beside_innocents(served.server.url, poison))
    assert bad.status_code == status, bad.text
    if status != 200:
        assert bad.json()["error"]["message"]
    assert [r.status_code for r in innocents] == [200] * len(INNOCENT)
    assert [r.json()["choices"][0]["text"] for r in innocents] == alone


def test_tiny_temperature_is_greedy_and_echo_returns_the_prompt(served):
    url = served.server.url + "/completions"
    greedy = httpx.post(url, json={"prompt": "x", "temperature": 0, "max_tokens": 12}).json()["choices"][0]["text"]
    tiny = httpx.post(url, json={"prompt": "x", "temperature": 1e-300, "max_tokens": 12}).json()["choices"][0]["text"]
    echo = httpx.post(url, json={"prompt": "x", "temperature": 0, "max_completion_tokens": 12, "echo": True}).json()
    assert tiny == greedy and echo["choices"][0]["text"] == "x" + greedy
    assert echo["usage"]["completion_tokens"] == 12


def test_an_engine_failure_fails_its_own_request_only(served, alone, monkeypatch):
    """A failure inside the shared engine step (a bug, say) reaches only the request whose sequence caused it."""
    engine = served.backend.engine
    forward = engine.runner.forward
    marker = served.backend.codec.encode("POISON", bos=False)

    def failing(batch, d):
        if any(s.tokens[1:1 + len(marker)] == marker for s in batch):
            raise RuntimeError("injected failure")
        return forward(batch, d)

    monkeypatch.setattr(engine.runner, "forward", failing)
    innocents, bad = asyncio.run(_beside_innocents(served.server.url, {"prompt": "POISON", "max_tokens": 8}))
    assert bad.status_code == 500 and "injected failure" in bad.json()["error"]["message"]
    assert [r.json()["choices"][0]["text"] for r in innocents] == alone
    assert not engine.has_work()


def test_a_solve_whose_calls_fail_in_the_engine_is_a_500_not_a_wrong_answer(served_apr, monkeypatch):
    engine = served_apr.backend.engine
    forward = engine.runner.forward
    monkeypatch.setattr(engine.runner, "forward", lambda batch, d: (_ for _ in ()).throw(RuntimeError("injected")))
    nums, target = PROBLEM
    r = httpx.post(served_apr.server.url + "/apr/solve", json={"nums": nums, "target": target}, timeout=60)
    assert r.status_code == 500 and "injected" in r.json()["error"]["message"]
    monkeypatch.setattr(engine.runner, "forward", forward)
    ok = httpx.post(served_apr.server.url + "/apr/solve", json={"nums": nums, "target": target}, timeout=60)
    assert ok.status_code == 200 and ok.json()["verified"] is True


@pytest.mark.parametrize("limits,message", [
    ({"max_threads": 10**9}, "max_threads=1000000000 (at most 256)"),
    ({"max_children": 10**9}, "max_children"),
    ({"max_depth": 10**6}, "max_depth"),
    ({"max_total_tokens": 10**12}, "max_total_tokens"),
    ({"timeout_s": 10**6}, "timeout_s"),
    ({"timeout_s": -1}, "timeout_s must be a positive number"),
    ({"timeout_s": 0}, "timeout_s must be a positive number"),
])
def test_solve_limits_are_capped_by_the_server(served_apr, limits, message):
    nums, target = PROBLEM
    r = httpx.post(served_apr.server.url + "/apr/solve", json={"nums": nums, "target": target, "limits": limits})
    assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_a_solve_without_a_timeout_gets_the_servers_default(served_apr):
    """A 1 ms default: the root times out at its first call's end instead of running unbounded."""
    policy = ServePolicy(solve_timeout_s=0.001)
    with Loopback(create_app(served_apr.backend, NAME, policy=policy)) as server:
        nums, target = PROBLEM
        r = httpx.post(server.url + "/apr/solve", json={"nums": nums, "target": target}, timeout=60)
    assert r.status_code == 200
    tree = r.json()["tree"]
    assert tree["finish_reason"] == "timeout" and r.json()["verified"] is False


def test_a_huge_body_is_refused_at_once_while_health_answers(served):
    """10 MB is refused from its Content-Length; a chunked body as soon as it passes the limit.

    Client and server share this process (and its GIL), so the bound on /health here is loose;
    ``scripts/serve_reliability.py`` measures it against a server process of its own.
    """
    body = json.dumps({"prompt": "x" * 10_000_000}).encode()
    result = {}

    def upload():
        t0 = time.perf_counter()
        result["status"] = httpx.post(served.server.url + "/completions", content=body, headers=JSON,
                                      timeout=30).status_code
        result["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=upload)
    health = []
    with httpx.Client(base_url=served.server.base, timeout=5) as client:
        client.get("/health")
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            assert client.get("/health").status_code == 200
            health.append(time.perf_counter() - t0)
    thread.join()
    assert result["status"] == 413 and result["seconds"] < 1.0
    assert health and max(health) < 0.5

    def chunks():
        for _ in range(40):
            yield b"x" * 100_000

    chunked = httpx.post(served.server.url + "/completions", content=chunks(),
                         headers=JSON, timeout=30)
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"


def test_api_key_and_allowed_hosts(served):
    policy = ServePolicy(api_key="s3cret", allowed_hosts=("127.0.0.1", "localhost"))
    with Loopback(create_app(served.backend, NAME, policy=policy)) as server:
        body = {"prompt": "x", "max_tokens": 2}
        assert httpx.post(server.url + "/completions", json=body).status_code == 401
        wrong = httpx.post(server.url + "/completions", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ok = httpx.post(server.url + "/completions", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(server.base + "/health").status_code == 200  # open, as vLLM's
        rebound = httpx.get(server.base + "/health", headers={"Host": "evil.example.com"})
        assert rebound.status_code == 400
        assert served.client().with_options(base_url=server.url, api_key="s3cret").models.list().data[0].max_model_len \
            == CONTEXT


def test_health_answers_while_a_long_step_runs(served, monkeypatch):
    """A step with a long prefill runs on a worker thread: one that takes seconds (a slow CPU, a long
    prompt) leaves the event loop free, and the request behind it still gets its tokens."""
    engine = served.backend.engine
    forward = engine.runner.forward
    started = threading.Event()

    def slow(batch, d):
        if sum(s.n_pending for s in batch) >= OFF_LOOP_TOKENS:
            started.set()
            time.sleep(1.5)
        return forward(batch, d)

    monkeypatch.setattr(engine.runner, "forward", slow)
    result = {}

    def complete():
        result["response"] = httpx.post(served.server.url + "/completions", timeout=30,
                                        json={"prompt": "Current State: 20:[4, 5]\n" * 12, "max_tokens": 2,
                                              "temperature": 0})

    thread = threading.Thread(target=complete)
    thread.start()
    assert started.wait(10)
    with httpx.Client(base_url=served.server.base, timeout=5) as client:
        t0 = time.perf_counter()
        health = client.get("/health")
        waited = time.perf_counter() - t0
    thread.join()
    assert health.status_code == 200 and health.json()["engine_busy"]
    assert waited < 0.5  # the step still has about a second to go
    assert result["response"].status_code == 200
    assert result["response"].json()["usage"]["completion_tokens"] == 2
