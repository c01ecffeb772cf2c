"""Fixtures for the RL tests: the tokenizer, a spawning demonstration, and a model that replays it."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from apr.countdown.search import AprSettings, apr_search
from apr.models import build_model
from apr.threads import Thread
from apr.tokenizer import encode_segment
from apr.train.batching import IGNORE, collate
from apr.train.checkpoint import save_checkpoint


@pytest.fixture(scope="session")
def demo() -> Thread:
    """A solved 3-number APR demonstration: the root spawns two children and joins them."""
    for seed in range(500):
        rng = random.Random(seed)
        nums, target = [rng.randint(1, 30) for _ in range(3)], rng.randint(10, 60)
        tree = apr_search(nums, target, AprSettings(beam_size=2, sub_beam_size=2), random.Random(seed))
        if tree.meta["solved"] and len(tree.spawns) == 1 and len(tree.spawns[0]) == 2:
            return tree
    raise AssertionError("no suitable demonstration")


@pytest.fixture(scope="session")
def sharp_model(tok, demo):
    """A ``tiny`` preset model trained until greedy decoding writes ``demo``, then sharpened.

    Scaling its output layer by 20 keeps every argmax, and makes temperature-1 sampling replay the
    demonstration's spawn and join nearly always while still going wrong about half the time:
    rollouts with real trees and rewards that differ within a group.
    """
    encoded = [encode_segment(tok, s.prompt, s.completion) for t in demo.walk() for s in t.segments()]
    batch = collate([ids for ids, _ in encoded], [n for _, n in encoded], tok.pad_token_id, "completion")
    model = build_model("tiny", tok, context_length=512)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        logits = model(input_ids=batch.inputs).logits
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9 and ((logits.argmax(-1) == batch.targets) | (batch.targets == IGNORE)).all():
            break
    else:
        pytest.fail("the tiny model did not memorise the demonstration")
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="session")
def sharp_checkpoint(sharp_model, tok, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("init") / "sharp", sharp_model, tok, {"purpose": "tests"})
