"""Fixtures for the runtime tests: the project tokenizer, tiny Llama models, memorised demonstrations."""

from __future__ import annotations

import pytest
import torch

from apr.tokenizer import encode_segment
from tests.runtime.support import demonstration, tiny_llama


@pytest.fixture(scope="session")
def model(tok):
    return tiny_llama(len(tok))


@pytest.fixture(scope="session")
def memorised(tok):
    """A tiny model trained until greedy decoding writes one APR demonstration (3 threads, 1 spawn).

    Random-weight models almost never spawn; this one does, so whole trees can be compared
    between backends. Training stops once every completion token is the argmax (~100 steps).
    """
    demo = next(d for d in (demonstration(s, beam_size=2, sub_beam_size=2) for s in range(100)) if d.spawns)
    encoded = [encode_segment(tok, s.prompt, s.completion) for t in demo.walk() for s in t.segments()]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    for i, (seq, n_prompt) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        completion[i, n_prompt: len(seq)] = True
    m = tiny_llama(len(tok), context=1024, init=0.02)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.train()
    for step in range(400):
        loss = m(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            with torch.no_grad():
                hit = m(input_ids=ids, attention_mask=mask).logits[:, :-1].argmax(-1) == ids[:, 1:]
            if (hit | ~completion[:, 1:]).all():
                break
    else:
        pytest.fail("the tiny model did not memorise the demonstration")
    return m.eval(), demo
