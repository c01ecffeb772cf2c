"""Train/inference consistency: the trainer scores exactly the tokens the runtime sampled, as it sampled them."""

from __future__ import annotations

import copy

import pytest
import torch

from apr import grammar as g
from apr.models import build_model
from apr.rl.episodes import call_sequence, episode_sequences
from apr.rl.loss import make_micro_batch, token_logprobs
from apr.rl.rollout import EmbeddedRollouts, solve_config
from apr.runtime.limits import Limits
from apr.threads import Thread

PROMPT = "Moving to Node #0\nCurrent State: 15:[30, 25, 10], Operations: []"


def trainer_vs_runtime(model: torch.nn.Module, trees: list[Thread], tok, autocast: bool,
                       temperature: float = 1.0) -> torch.Tensor:
    """Trainer log-prob minus the sampler's, for every sampled token of every call of ``trees``."""
    seqs = [s for i, tree in enumerate(trees) for s in episode_sequences(tree, tok, i)]
    assert seqs and all(s.runtime_logprobs is not None for s in seqs)
    mb = make_micro_batch(seqs, tok.pad_token_id)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logp = token_logprobs(model, mb.inputs, mb.targets, temperature)
    assert int(mb.mask.sum()) == sum(s.n_completion for s in seqs)
    return (logp - mb.runtime_logprobs)[mb.mask]


@pytest.mark.parametrize("dtype,tolerance,seed", [("fp32", 1e-4, 7), ("bf16", 5e-2, 7), ("bf16", 5e-2, 8)])
def test_random_model_logprobs_match_the_sampler(tok, dtype, tolerance, seed):
    """A random ``tiny`` model at temperature 1: fp32 agrees to float error, a bf16 engine to bf16 error.

    Which tokens a bf16 model samples depends on the CPU's rounding (AMX on Intel, AVX512-BF16 on
    AMD), and so does whether a random tree happens to spawn: the assertions hold for any sample,
    and two seeds check that they do not lean on one.
    """
    model = build_model("tiny", tok, context_length=512, seed=3).eval()
    rollouts = EmbeddedRollouts(model, tok, dtype, max_slots=8)
    assert all(b.dtype == torch.float32 for b in rollouts.model.buffers())  # RoPE frequencies stay fp32
    trees = rollouts.solve([PROMPT] * 3, solve_config(Limits(), max_tokens=60, seed=seed))
    first_calls = [t.meta["calls"][0]["token_ids"] for t in trees]
    assert len({tuple(ids) for ids in first_calls}) == 3  # three distinct samples of one prompt
    sampled = [c["token_ids"] for t in trees for c in t.meta["calls"]]
    # A random model writes many non-canonical splits: re-encoding its text would score other tokens.
    assert any(tok.encode(tok.decode(ids), add_special_tokens=False) != ids for ids in sampled)
    gap = trainer_vs_runtime(model, trees, tok, autocast=dtype == "bf16")
    assert gap.numel() > 100
    assert gap.abs().max().item() < tolerance


def test_tempered_rollouts_record_the_tempered_log_probs_the_trainer_computes(tok):
    """At temperature 0.6 both sides score softmax(logits / 0.6); the raw log-probs differ from them."""
    model = build_model("tiny", tok, context_length=512, seed=3).eval()
    rollouts = EmbeddedRollouts(model, tok, "fp32", max_slots=8)
    trees = rollouts.solve([PROMPT] * 2, solve_config(Limits(), max_tokens=60, seed=7, temperature=0.6))
    assert trainer_vs_runtime(model, trees, tok, autocast=False, temperature=0.6).abs().max().item() < 1e-4
    assert trainer_vs_runtime(model, trees, tok, autocast=False).abs().max().item() > 1e-2


def test_spawning_episodes_match_the_sampler_and_train_only_generated_tokens(tok, demo, sharp_model):
    """Trees with a spawn and a join: every call (children, the continuation after the join) agrees."""
    rollouts = EmbeddedRollouts(copy.deepcopy(sharp_model), tok, "fp32", max_slots=16)
    trees = rollouts.solve([demo.prompt] * 4, solve_config(Limits(), max_tokens=300, seed=11))
    spawned = [t for t in trees if t.spawns and t.spawns[0]]
    assert spawned, "the sharpened model should replay the demonstration's spawn"
    assert trainer_vs_runtime(sharp_model, trees, tok, autocast=False).abs().max().item() < 1e-4

    tree = spawned[0]
    segments = [s for t in tree.walk() for s in t.segments()]
    calls = [c for t in tree.walk() for c in t.meta["calls"]]
    seqs = episode_sequences(tree, tok, 0)
    assert len(calls) == len(seqs) == len(segments) and any(seg.inserted for seg in segments)
    for call, seq, seg in zip(calls, seqs, segments):
        # One call per segment. The newline after a spawn block is the orchestrator's, not sampled:
        # the call stopped at the marker, so the trainer must not score a newline there.
        assert call["prompt"] == seg.prompt
        spawn_newline = "\n" if seg.completion.endswith(g.SPAWN_CLOSE + "\n") else ""
        assert call["text"] + spawn_newline == seg.completion
        # Loss starts after the whole prompt, so the join blocks the orchestrator wrote carry none.
        assert tok.decode(seq.ids[:seq.n_prompt], skip_special_tokens=True) == seg.prompt
        assert tok.decode(seq.ids[seq.n_prompt:], skip_special_tokens=True) == call["text"]
        assert all(end <= len(seg.prompt) for _, end in seg.inserted)


def test_a_server_call_is_trained_on_the_eos_it_stopped_on(tok):
    """An OpenAI-compatible backend returns text, re-encoded without the EOS the server stopped on."""
    text = "\nExploring Operation: 10+5=15, Resulting Numbers: [15]\n"
    ids = tok.encode(text, add_special_tokens=False)
    server = call_sequence({"prompt": PROMPT, "text": text, "token_ids": ids, "logprobs": None,
                            "finish_reason": "eos"}, tok, 0, "0")
    engine = call_sequence({"prompt": PROMPT, "text": text, "token_ids": ids + [tok.eos_token_id],
                            "logprobs": [-0.1] * (len(ids) + 1), "finish_reason": "eos"}, tok, 0, "0")
    assert server.ids == engine.ids == tok(PROMPT)["input_ids"] + ids + [tok.eos_token_id]
    assert server.runtime_logprobs is None and engine.runtime_logprobs is not None
    cut = call_sequence({"prompt": PROMPT, "text": text, "token_ids": ids, "logprobs": None,
                         "finish_reason": "length"}, tok, 0, "0")
    assert cut.ids[-1] != tok.eos_token_id and cut.n_completion == len(ids)
