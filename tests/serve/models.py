"""Tiny Llama checkpoints for serving tests, saved as HF folders with the bundled tokenizer.

``save_random``: random weights with a wide init, so logits are peaked and greedy ties cannot
flip between the engine's and ``model.generate``'s arithmetic. ``save_memorised``: trained until
greedy decoding writes one APR demonstration (a root that spawns two children, one of which
solves it), because random weights almost never write a spawn block. The problem has three
numbers: its segments are half as long as a four-number one's, so training takes half the time.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from apr.countdown.search import AprSettings, apr_search
from apr.models.presets import model_config
from apr.models.trained_range import META_FILE, TrainedRange
from apr.threads import Thread
from apr.tokenizer import encode_segment, load_tokenizer, save_tokenizer

NAME = "tiny"  # the name the test servers serve the checkpoints under
CONTEXT = 1024
PROBLEM = ([3, 23, 11], 36)


def _tiny(init: float, seed: int = 0) -> LlamaForCausalLM:
    config = model_config("tiny", load_tokenizer(), CONTEXT)
    config.initializer_range = init
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def _save(model: LlamaForCausalLM, path: Path) -> Path:
    model.save_pretrained(path)
    save_tokenizer(load_tokenizer(), path)
    return path


def save_random(path: Path) -> Path:
    return _save(_tiny(init=0.3), path)


@functools.cache
def demonstration() -> Thread:
    """Beam 2, child beam 2: the root spawns 2 children and finishes from the join (4 segments)."""
    nums, target = PROBLEM
    return apr_search(nums, target, AprSettings(beam_size=2, sub_beam_size=2), random.Random(201))


@functools.cache
def _memorised() -> LlamaForCausalLM:
    tok = load_tokenizer()
    encoded = [encode_segment(tok, s.prompt, s.completion) for t in demonstration().walk() for s in t.segments()]
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), tok.pad_token_id)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    for i, (seq, n_prompt) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        completion[i, n_prompt: len(seq)] = True
    labels = ids.masked_fill(ids == tok.pad_token_id, -100)
    model = _tiny(init=0.02).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))  # memorised in ~160 steps
    for step in range(400):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            with torch.no_grad():
                hit = model(input_ids=ids).logits[:, :-1].argmax(-1) == ids[:, 1:]
            if (hit | ~completion[:, 1:]).all():
                return model.eval()
    raise AssertionError("the tiny model did not memorise the demonstration")


def save_memorised(path: Path) -> Path:
    """The memorised model, recording (as ``apr train`` does) the one problem it was trained on."""
    _save(_memorised(), path)
    task = TrainedRange.from_prompts([demonstration().prompt])
    (path / META_FILE).write_text(json.dumps({"task": task.to_dict()}))
    return path
