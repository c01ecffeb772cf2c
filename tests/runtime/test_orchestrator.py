"""Whole trees: replays of solver demonstrations, KV-reuse joins vs re-prefill, early join, timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from apr import grammar as g
from apr.runtime.backend import SamplingParams
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.limits import Limits
from apr.countdown.verifier import verify_countdown
from apr.runtime.metrics import runtime_metrics
from apr.runtime.orchestrator import SolveConfig, asolve_many, solve, solve_many
from apr.runtime.scripted import ScriptedBackend
from apr.runtime.sequential import SequentialBackend
from apr.threads import Thread
from apr.threads import shape
from tests.runtime.support import demonstration, replay


@pytest.mark.parametrize("seed", range(12))
def test_replaying_a_demonstration_rebuilds_it_exactly(tok, seed):
    """Child prompts, join blocks and continuations come out byte for byte as the solver wrote them."""
    demo = demonstration(seed, beam_size=1 + seed % 3, sub_beam_size=2 + seed % 4, max_depth=2)
    backend = ScriptedBackend(replay(demo), tok)
    tree = solve(demo.prompt, backend, SolveConfig(limits=Limits(max_depth=2), verify=verify_countdown))
    assert shape(tree) == shape(demo)
    assert tree.meta["verified"] is demo.meta["solved"]
    assert {s.rsplit("/", 1)[1] for s in backend.released} == {t.id for t in tree.walk()}
    metrics = tree.meta["metrics"]
    assert metrics["n_threads"] == len(list(demo.walk()))
    assert metrics["sequential_tokens"] <= metrics["generated_tokens"] < metrics["total_tokens"]
    for t in tree.walk():  # token counts are what was decoded (EOS included): spans add up to the calls
        assert t.generated_tokens() == sum(c["new_tokens"] for c in t.meta["calls"])


def test_kv_reuse_join_equals_reprefill_and_plain_generate(memorised, tok):
    """(b): the embedded engine's tree == re-prefill through the same engine == transformers' generate."""
    model, demo = memorised
    config = SolveConfig(sampling=SamplingParams(max_tokens=400))
    reuse = solve(demo.prompt, EmbeddedBackend(model, tok), config)
    reprefill = solve(demo.prompt, EmbeddedBackend(model, tok, reuse_cache=False), config)
    generate = solve(demo.prompt, SequentialBackend(model, tok), config)
    assert shape(reuse) == shape(reprefill) == shape(generate) == shape(demo)
    assert len(reuse.spawns) == 1 and len(reuse.children) == 2
    continuation = reuse.meta["calls"][1]  # the parent's call after the join
    before_spawn = tok(reuse.prompt + reuse.spans[0].text)["input_ids"]
    assert continuation["cached_tokens"] == len(before_spawn)
    assert continuation["prompt_tokens"] - continuation["cached_tokens"] == tok.encode(
        reuse.spans[2].text, add_special_tokens=False).__len__()  # only the join block was prefilled
    assert reprefill.meta["calls"][1]["cached_tokens"] == 0
    assert runtime_metrics(reuse).prefill_tokens < runtime_metrics(reprefill).prefill_tokens


def test_problems_batched_together_equal_problems_solved_alone(memorised, tok, model):
    trained, demo = memorised
    others = [demonstration(s, beam_size=2, sub_beam_size=2).prompt for s in (101, 102)]
    prompts = [demo.prompt, others[0], demo.prompt, others[1]]
    config = SolveConfig(sampling=SamplingParams(max_tokens=300))
    together = solve_many(prompts, EmbeddedBackend(trained, tok, max_slots=16), config)
    for prompt, tree in zip(prompts, together):
        alone = solve(prompt, SequentialBackend(trained, tok), config)
        assert shape(tree) == shape(alone)
    sampled = SolveConfig(sampling=SamplingParams(temperature=1.0, max_tokens=40, seed=5))
    backend = EmbeddedBackend(model, tok, max_slots=16)
    first, second = (solve_many(prompts, backend, sampled) for _ in range(2))
    assert [shape(t) for t in first] == [shape(t) for t in second]
    assert shape(first[0]) != shape(first[2])  # the same prompt at another index samples anew


def _early_join_demo() -> Thread:
    """A demonstration whose root spawns at least three children, exactly one of which succeeds."""
    for seed in range(500):
        demo = demonstration(seed, beam_size=3, sub_beam_size=3)
        children = demo.spawns[0] if demo.spawns else []
        if len(children) >= 3 and sum(g.answer_path(c.context()) is not None for c in children) == 1:
            return demo
    raise AssertionError("no suitable demonstration")


@pytest.mark.parametrize("early_join", [False, True])
def test_early_join_cancels_siblings_once_one_is_verified(tok, early_join):
    demo = _early_join_demo()
    table = replay(demo)
    losers = {c.prompt for c in demo.spawns[0] if g.answer_path(c.context()) is None}

    def script(prompt, rng):  # losing children search slowly (a long text at 2 ms a token)
        return "Moving to Node #9\n" * 150 if prompt in losers else table(prompt, rng)

    backend = ScriptedBackend(script, tok, token_delay=0.002)
    config = SolveConfig(verify=verify_countdown, early_join=early_join)
    start = time.perf_counter()
    tree = solve(demo.prompt, backend, config)
    wall = time.perf_counter() - start
    children = tree.spawns[0]
    assert tree.meta["verified"] is True
    assert shape(tree)["spans"] == shape(demo)["spans"]  # the join is the same either way
    if early_join:
        assert sum(c.finish_reason == "cancelled" for c in children) == len(losers)
        assert any(e.startswith("early join") for e in tree.events)
        assert wall < 1.5
    else:
        assert all(c.finish_reason == "eos" for c in children)
        assert wall > 150 * 4 * 0.002


def test_timeout_ends_every_thread_and_returns_promptly(tok):
    demo = demonstration(3, beam_size=3, sub_beam_size=3)
    table = replay(demo)

    def script(prompt, rng):  # the root spawns as demonstrated, then everyone stalls
        return table(prompt, rng) if prompt == demo.prompt else "Moving to Node #9\n" * 1000

    backend = ScriptedBackend(script, tok, token_delay=0.01)
    start = time.perf_counter()
    tree = solve(demo.prompt, backend, SolveConfig(limits=Limits(timeout_s=0.3)))
    assert time.perf_counter() - start < 2.0
    assert tree.finish_reason == "timeout"
    assert all(c.finish_reason == "timeout" for c in tree.children)


def test_async_api_shares_one_loop(memorised, tok):
    trained, demo = memorised
    backend = EmbeddedBackend(trained, tok)

    async def main():
        return await asolve_many([demo.prompt] * 3, backend, SolveConfig(sampling=SamplingParams(max_tokens=300)))

    trees = asyncio.run(main())
    assert all(shape(t) == shape(demo) for t in trees)
    assert not backend.engine.has_work() and backend.engine.slots_in_use() == 0
