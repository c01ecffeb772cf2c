"""Helpers shared by the runtime tests: tiny models, solver demonstrations, tree comparison."""

from __future__ import annotations

import random

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apr.countdown.search import AprSettings, apr_search
from apr.runtime.scripted import Script
from apr.threads import Thread


def tiny_llama(vocab: int, *, hidden: int = 64, layers: int = 2, kv_heads: int = 2, context: int = 512,
               init: float = 0.3, seed: int = 0) -> LlamaForCausalLM:
    """A random fp32 Llama; a wide init gives peaked logits, so greedy ties cannot flip."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=context,
                      initializer_range=init, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    return LlamaForCausalLM(cfg).eval()


def demonstration(seed: int, **settings) -> Thread:
    """A solver demonstration for the problem drawn with ``seed``."""
    rng = random.Random(seed)
    nums, target = [rng.randint(1, 99) for _ in range(4)], rng.randint(10, 100)
    return apr_search(nums, target, AprSettings(**settings), random.Random(seed))


def replay(demo: Thread) -> Script:
    """A script that writes, for each segment prompt of ``demo``, that segment's completion."""
    table = {s.prompt: s.completion for t in demo.walk() for s in t.segments()}
    return lambda prompt, rng: table[prompt]
