"""The embedded backend: batched sessions equal the one-call-at-a-time reference, and joins reuse the cache."""

from __future__ import annotations

import asyncio

import pytest

from apr.runtime.backend import SamplingParams
from apr.runtime.codec import common_prefix
from apr.runtime.embedded import EmbeddedBackend
from apr.runtime.sequential import SequentialBackend

PROMPTS = [
    "Moving to Node #0\nCurrent State: 27:[22, 26, 31, 53], Operations: []",
    "Current State: 12:[3, 4, 50, 60], Operations: []",
    "Moving to Node #0,1\nCurrent State: 27:[22, 31, 27], Operations: ['53-26=27']",
    "x",
]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_calls_equal_sequential_generate(model, tok):
    async def all_at_once(backend, params):
        return await asyncio.gather(*(backend.generate(f"s{i}", p, params) for i, p in enumerate(PROMPTS)))

    free = run(all_at_once(SequentialBackend(model, tok), SamplingParams(max_tokens=40)))
    # Stop strings taken from the unconstrained outputs, so that some calls do stop (mid-token too).
    for stop in [(), (free[0].text[12:15],), (free[1].text[5:7], free[2].text[20:21])]:
        params = SamplingParams(max_tokens=40, stop=stop, logprobs=True)
        batched = run(all_at_once(EmbeddedBackend(model, tok, max_slots=8), params))
        alone = run(all_at_once(SequentialBackend(model, tok), params))
        for a, b in zip(batched, alone):
            assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)
        assert sum(a.finish_reason == "stop" for a in batched) >= len(stop)


def test_a_join_reuses_the_parent_cache_and_matches_a_reprefill(model, tok):
    """Continue a session with its text minus a tail plus new text: only the new part is prefilled."""
    reuse = EmbeddedBackend(model, tok)
    fresh = SequentialBackend(model, tok)
    params = SamplingParams(max_tokens=30)

    async def scenario(backend):
        first = await backend.generate("parent", PROMPTS[0], params)
        kept = first.text[: len(first.text) // 2]
        join = "\n<Sub Searches>\n<No Solution in Sub Search 0 at level 1 at Node #0,0>\n<End Sub Searches>\n"
        second = await backend.generate("parent", PROMPTS[0] + kept + join, params)
        return first, second, kept + join

    first, joined, appended = run(scenario(reuse))
    ref_first, ref_joined, _ = run(scenario(fresh))
    assert (joined.token_ids, joined.text) == (ref_joined.token_ids, ref_joined.text)
    assert first.token_ids == ref_first.token_ids
    prompt_ids = reuse.codec.encode(PROMPTS[0] + appended)
    assert joined.prompt_tokens == len(prompt_ids)
    assert joined.cached_tokens >= len(reuse.codec.encode(PROMPTS[0])) > 0
    assert joined.cached_tokens < joined.prompt_tokens
    assert ref_joined.cached_tokens == 0


def test_fork_from_copies_a_shared_prefix(model, tok):
    backend = EmbeddedBackend(model, tok)
    params = SamplingParams(max_tokens=12)

    async def scenario():
        parent = await backend.generate("parent", PROMPTS[0], params)
        child = await backend.generate("child", PROMPTS[0] + "\nExploring", params, fork_from="parent")
        again = await backend.generate("parent", PROMPTS[0] + parent.text, params)  # parent cache intact
        return parent, child, again

    parent, child, again = run(scenario())
    alone = run(SequentialBackend(model, tok).generate("c", PROMPTS[0] + "\nExploring", params))
    assert child.token_ids == alone.token_ids
    assert child.cached_tokens == len(backend.codec.encode(PROMPTS[0]))
    # A random model writes non-canonical tokenizations; reuse ends where re-tokenizing differs.
    held = backend.codec.encode(PROMPTS[0]) + parent.token_ids
    assert again.cached_tokens == common_prefix(held, backend.codec.encode(PROMPTS[0] + parent.text))
    assert again.cached_tokens > len(backend.codec.encode(PROMPTS[0]))


def test_reprefill_mode_never_reuses(model, tok):
    backend = EmbeddedBackend(model, tok, reuse_cache=False)
    params = SamplingParams(max_tokens=8)

    async def scenario():
        first = await backend.generate("s", PROMPTS[1], params)
        return await backend.generate("s", PROMPTS[1] + first.text, params)

    assert run(scenario()).cached_tokens == 0


def test_cancelling_a_call_frees_the_batch_and_sync_batches_work_across_loops(model, tok):
    backend = EmbeddedBackend(model, tok, max_slots=4)

    async def cancel_one():
        slow = asyncio.create_task(backend.generate("slow", PROMPTS[0], SamplingParams(max_tokens=400)))
        quick = await backend.generate("quick", PROMPTS[1], SamplingParams(max_tokens=5))
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return quick

    assert run(cancel_one()).finish_reason == "length"
    assert not backend.engine.has_work()

    async def same_session_twice():
        return await asyncio.gather(backend.generate("dup", "a", SamplingParams(max_tokens=50)),
                                    backend.generate("dup", "b", SamplingParams(max_tokens=50)))

    with pytest.raises(RuntimeError, match="in flight"):
        run(same_session_twice())
    backend.release("dup")
    for _ in range(2):  # each asyncio.run is a new loop; the driver follows
        out = backend.generate_batch(PROMPTS, SamplingParams(max_tokens=6))
        assert [len(g.token_ids) for g in out] == [6] * len(PROMPTS)
    backend.release("slow")
    backend.release("quick")
    assert backend.engine.slots_in_use() == 0


def test_prompt_longer_than_the_window_finishes_without_decoding(model, tok):
    backend = EmbeddedBackend(model, tok, max_len=16)
    out = run(backend.generate("s", PROMPTS[0], SamplingParams(max_tokens=5)))
    assert (out.finish_reason, out.token_ids) == ("context", [])
    assert backend.context_length == 16


def test_a_bf16_engine_keeps_rope_buffers_in_fp32():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from apr.runtime.embedded import EmbeddedBackend
    from apr.tokenizer import load_tokenizer

    tok = load_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(config)
    EmbeddedBackend(model, tok, max_slots=2, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(b.dtype == torch.float32 for name, b in model.named_buffers() if "inv_freq" in name)
