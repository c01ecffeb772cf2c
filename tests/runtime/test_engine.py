"""The engine against ``model.generate``: greedy tokens must match for every sequence, whatever the batch."""

from __future__ import annotations

import torch

from apr.runtime.backend import SamplingParams
from apr.runtime.engine import Engine
from apr.runtime.model_runner import transpose_weight_storage
from apr.runtime.sequence import Sequence
from apr.runtime.text import TextStream
from tests.runtime.support import tiny_llama

GREEDY = SamplingParams(max_tokens=24)


def reference(model, ids: list[int], n: int) -> list[int]:
    """What ``generate`` writes for ``ids`` alone (greedy, no EOS)."""
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


def drain(engine: Engine) -> dict[int, Sequence]:
    done = {}
    while engine.has_work():
        for seq in engine.step():
            done[seq.id] = seq
    return done


def prompts(vocab: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths]


def test_batched_greedy_equals_generate_including_late_joiners(model):
    engine = Engine(model, max_slots=8)
    ps = prompts(model.config.vocab_size, [5, 17, 1, 40, 3, 12, 29])
    seqs = [engine.add(p, GREEDY) for p in ps[:3]]
    for step in range(40):  # four more join mid-flight, at different steps
        if step in (2, 5, 9, 13):
            seqs.append(engine.add(ps[len(seqs)], SamplingParams(max_tokens=10 + step)))
        for seq in engine.step():
            assert seq.finish_reason == "length"
    drain(engine)
    for seq, p in zip(seqs, ps):
        assert seq.result().token_ids == reference(model, p, len(seq.out_ids))


def test_weights_changed_in_place_are_used_by_the_next_step(tok):
    """In-place weight updates (how a GRPO trainer syncs weights) reach the next step: nothing caches stale weights."""
    model, other = tiny_llama(len(tok)), tiny_llama(len(tok), seed=1)
    engine = Engine(model, max_slots=4)
    p = prompts(model.config.vocab_size, [11])[0]
    before = engine.add(p, GREEDY)
    drain(engine)
    model.load_state_dict(other.state_dict())  # copies into the engine model's own tensors
    after = engine.add(p, GREEDY)
    drain(engine)
    assert before.result().token_ids == reference(tiny_llama(len(tok)), p, 24)
    assert after.result().token_ids == reference(other, p, 24) != before.result().token_ids


def test_crop_extend_and_fork_equal_generate_on_the_resulting_tokens(model):
    engine = Engine(model, max_slots=8)
    a, b = (engine.add(p, GREEDY) for p in prompts(model.config.vocab_size, [9, 21]))
    busy = engine.add(prompts(model.config.vocab_size, [7], seed=1)[0], SamplingParams(max_tokens=80))
    while a.running or b.running:
        engine.step()
    parent = list(a.tokens)
    engine.crop(a, 20)  # a join: keep the prefix, drop a "spawn block", prefill a "join block"
    engine.extend(a, [11, 12, 13, 14], GREEDY)
    child = engine.fork(b)
    engine.crop(child, 12)
    engine.extend(child, [40, 41], GREEDY)
    engine.extend(b, [], GREEDY)  # continue b from everything it holds
    b_tokens = list(b.tokens)
    drain(engine)
    assert busy.finish_reason == "length"
    assert a.result().cached_tokens == 20
    assert a.result().token_ids == reference(model, parent[:20] + [11, 12, 13, 14], 24)
    assert child.result().cached_tokens == 12
    assert child.result().token_ids == reference(model, b_tokens[:12] + [40, 41], 24)
    assert b.result().cached_tokens == len(b_tokens) - 1  # the last token is re-fed for its logits
    assert b.result().token_ids == reference(model, b_tokens, 24)


def test_eviction_when_slots_run_out_recomputes_and_stays_exact(model):
    engine = Engine(model, max_slots=2)
    ps = prompts(model.config.vocab_size, [6, 8, 10, 12])
    seqs = [engine.add(p, GREEDY) for p in ps]  # two wait for a slot
    drain(engine)
    first = seqs[0]
    engine.extend(first, [7], GREEDY)  # its cache was evicted by the later sequences
    drain(engine)
    assert first.result().cached_tokens == 0
    assert first.result().token_ids == reference(model, ps[0] + seqs[0].tokens[len(ps[0]):-25] + [7], 24)
    for seq, p in zip(seqs[1:], ps[1:]):
        assert seq.result().token_ids == reference(model, p, 24)


def test_sampling_is_per_sequence_and_independent_of_the_batch(model):
    params = SamplingParams(temperature=1.0, top_k=20, top_p=0.9, max_tokens=30, seed=7)
    p = prompts(model.config.vocab_size, [10])[0]
    alone = Engine(model, max_slots=4)
    solo = alone.add(p, params)
    drain(alone)
    crowded = Engine(model, max_slots=8)
    others = [crowded.add(q, SamplingParams(temperature=1.0, max_tokens=40, seed=i))
              for i, q in enumerate(prompts(model.config.vocab_size, [3, 30, 12], seed=2))]
    again = crowded.add(p, params)
    other_seed = crowded.add(p, SamplingParams(temperature=1.0, top_k=20, top_p=0.9, max_tokens=30, seed=8))
    drain(crowded)
    assert again.out_ids == solo.out_ids
    assert other_seed.out_ids != solo.out_ids
    assert all(o.finish_reason == "length" for o in others)
    greedy_like = Engine(model, max_slots=2)
    k1 = greedy_like.add(p, SamplingParams(temperature=1.0, top_k=1, max_tokens=20, seed=3))
    p0 = greedy_like.add(p, SamplingParams(temperature=0.7, top_p=1e-6, max_tokens=20, seed=4))
    drain(greedy_like)
    assert k1.out_ids == p0.out_ids == reference(model, p, 20)


def test_logprobs_are_the_models_raw_log_probabilities_or_the_tempered_ones(model):
    engine = Engine(model, max_slots=2)
    p = prompts(model.config.vocab_size, [8])[0]
    raw = engine.add(p, SamplingParams(temperature=1.5, max_tokens=12, seed=1, logprobs=True))
    tempered = engine.add(p, SamplingParams(temperature=1.5, max_tokens=12, seed=1, logprobs=True,
                                            tempered_logprobs=True))
    drain(engine)
    assert raw.out_ids == tempered.out_ids  # the same draws: only what is reported differs
    full = torch.tensor([p + raw.out_ids[:-1]])
    with torch.no_grad():
        logits = model(full).logits[0, len(p) - 1:]
    for seq, scale in ((raw, 1.0), (tempered, 1.5)):
        expected = torch.log_softmax(logits / scale, -1).gather(1, torch.tensor(seq.out_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(seq.result().logprobs), expected, atol=1e-4)


def test_finish_reasons_eos_context_length_and_cancel(model):
    p = prompts(model.config.vocab_size, [6])[0]
    first = reference(model, p, 5)
    engine = Engine(model, max_slots=4, max_len=20, stop_token_ids=[first[2]])
    eos = engine.add(p, GREEDY)
    ctx = engine.add(p[:3], SamplingParams(max_tokens=100))
    cut = engine.add(p, SamplingParams(max_tokens=1))
    never = engine.add(list(range(4, 24)), GREEDY)  # the prompt fills the window
    assert never.finish_reason == "context" and not never.running
    victim = engine.add(p[:4], SamplingParams(max_tokens=100))
    engine.step()
    engine.cancel(victim)
    drain(engine)
    assert (eos.finish_reason, eos.out_ids) == ("eos", first[:3])
    assert cut.finish_reason == "length" and len(cut.out_ids) == 1
    assert ctx.finish_reason == "context" and len(ctx.tokens) == 20
    assert victim.finish_reason == "cancelled" and len(victim.out_ids) == 1


def test_text_stream_cuts_after_the_earliest_stop_and_decodes_split_utf8():
    stream = TextStream(("cd", "bcx", "d"))
    assert not stream.push(b"ab")
    assert stream.push(b"cdx")  # "cd" and "d" end at the same place, "bcx" later
    assert stream.text == "abcd"
    utf8 = TextStream(("é",))
    assert not utf8.push("é".encode()[:1])
    assert utf8.text == ""
    assert utf8.push("é".encode()[1:] + b"z")
    assert utf8.text == "é"
    broken = TextStream()
    broken.push(b"a\xc3")
    broken.close()
    assert broken.text == "a\ufffd"


def test_a_failure_inside_a_step_ends_only_the_sequence_that_causes_it(model, monkeypatch):
    """The batch is re-run one sequence at a time: the culprit finishes with ``error``, the rest as if alone."""
    engine = Engine(model, max_slots=8)
    ps = prompts(model.config.vocab_size, [6, 9, 4, 12])
    seqs = [engine.add(p, GREEDY) for p in ps]
    poisoned = seqs[2]
    forward = engine.runner.forward

    def failing(batch, d):
        if poisoned in batch and len(poisoned.out_ids) == 3:
            raise RuntimeError("overflow in the sampler")
        return forward(batch, d)

    monkeypatch.setattr(engine.runner, "forward", failing)
    done = drain(engine)
    assert done[poisoned.id].finish_reason == "error" and "overflow" in str(poisoned.error)
    assert len(poisoned.out_ids) == 3 and not engine.has_work()
    for seq, p in zip(seqs, ps):
        if seq is not poisoned:
            assert seq.finish_reason == "length" and seq.result().token_ids == reference(model, p, 24)
    again = engine.add(ps[2], GREEDY)  # the engine goes on serving, the culprit's prompt included
    drain(engine)
    assert again.result().token_ids == reference(model, ps[2], 24)


def test_tiny_temperatures_decode_greedily_and_huge_top_k_means_off(model):
    engine = Engine(model, max_slots=4)
    p = prompts(model.config.vocab_size, [7])[0]
    greedy = engine.add(p, GREEDY)
    tiny = engine.add(p, SamplingParams(temperature=1e-300, seed=1, max_tokens=24))
    wide = engine.add(p, SamplingParams(temperature=1.0, top_k=10**30, seed=5, max_tokens=24))
    off = engine.add(p, SamplingParams(temperature=1.0, top_k=0, seed=5, max_tokens=24))
    drain(engine)
    assert tiny.result().token_ids == greedy.result().token_ids == reference(model, p, 24)
    assert wide.result().token_ids == off.result().token_ids


def test_a_half_precision_model_can_attend_in_fp32(tok):
    """The cache (and attention) may be wider than the weights (CPUs without AMX): the bf16 model then
    scores its own tokens like the model does in fp32, within bf16's rounding of the weights' products."""
    model = tiny_llama(len(tok))
    wide = tiny_llama(len(tok))
    for p in model.parameters():
        p.data = p.data.to(torch.bfloat16)
    for p, q in zip(wide.parameters(), model.parameters()):
        p.data = q.data.float()  # the same bf16 weights, computed in fp32
    engine = Engine(model, max_slots=2, kv_dtype=torch.float32)
    assert engine.cache.k.dtype == torch.float32
    p = prompts(model.config.vocab_size, [9])[0]
    seq = engine.add(p, SamplingParams(max_tokens=8, logprobs=True))
    drain(engine)
    ids = torch.tensor([p + seq.out_ids[:-1]])
    with torch.no_grad():
        expected = torch.log_softmax(wide(ids).logits[0, len(p) - 1:].float(), -1)
    expected = expected.gather(1, torch.tensor(seq.out_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(seq.result().logprobs), expected, atol=0.1)


def test_a_token_budget_prefills_long_prompts_in_chunks_and_changes_no_token(model):
    """Under ``max_step_tokens`` a long prompt spans several steps while the decoders beside it go on
    one token per step; every sequence still writes what ``generate`` writes."""
    engine = Engine(model, max_slots=8, max_step_tokens=16)
    ps = prompts(model.config.vocab_size, [3, 5, 70, 41, 2])
    early = [engine.add(p, SamplingParams(max_tokens=30)) for p in ps[:2]]
    engine.step()  # the two short prompts are decoding now
    late = [engine.add(p, SamplingParams(max_tokens=12)) for p in ps[2:]]
    fed = []
    while engine.has_work():
        batch = engine.schedule()
        fed.append(sum(s.n_feed for s in batch))
        before = {s.id: len(s.out_ids) for s in early if s.running}
        engine.step(batch)
        assert all(len(s.out_ids) == before[s.id] + 1 for s in early if s.id in before)
    assert max(fed) <= 16 and fed.count(16) >= 3  # the 70- and 41-token prompts took several full steps
    for seq, p in zip(early + late, ps):
        assert seq.finish_reason == "length"
        assert seq.result().token_ids == reference(model, p, len(seq.out_ids))


def test_a_budget_smaller_than_the_decoders_still_advances_every_prompt(model):
    engine = Engine(model, max_slots=8, max_step_tokens=4)
    ps = prompts(model.config.vocab_size, [2, 2, 2, 2, 2, 30])
    seqs = [engine.add(p, SamplingParams(max_tokens=20)) for p in ps]
    drain(engine)
    for seq, p in zip(seqs, ps):
        assert seq.result().token_ids == reference(model, p, 20)


def test_transposed_weight_storage_keeps_values_and_the_engine_still_equals_generate(tok):
    model, original = tiny_llama(len(tok)), tiny_llama(len(tok))
    transpose_weight_storage(model)
    q = model.model.layers[0].self_attn.q_proj.weight
    assert not q.is_contiguous() and q.t().is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    engine = Engine(model, max_slots=4)
    ps = prompts(model.config.vocab_size, [7, 30, 2])
    seqs = [engine.add(p, GREEDY) for p in ps]
    drain(engine)
    for seq, p in zip(seqs, ps):
        assert seq.result().token_ids == reference(original, p, 24)
    half = tiny_llama(len(tok)).to(torch.bfloat16)
    transpose_weight_storage(half)  # products in bf16 keep the plain layout
    assert half.model.layers[0].self_attn.q_proj.weight.is_contiguous()
