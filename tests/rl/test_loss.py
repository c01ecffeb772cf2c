"""The GRPO loss on a hand-built two-episode batch equals a per-token loop written out independently."""

from __future__ import annotations

import math

import pytest
import torch

from apr.models import build_model
from apr.rl.episodes import group_advantages, training_sequences
from apr.rl.loss import grpo_loss, make_micro_batch, token_logprobs
from apr.threads import Thread

CLIP, BETA = 0.2, 0.1
JOIN = ("<Sub Searches>\n<Goal Reached in Sub Search 0 at level 1 at Node #0,0>\nMoving to Node #0,0\n"
        "Current State: 15:[10, 5], Operations: ['30-25=5']\nExploring Operation: 10+5=15, Resulting Numbers: [15]\n"
        "15,15 equal: Goal Reached\n<No Solution in Sub Search 1 at level 1 at Node #0,1>\n<End Sub Searches>\n")
ROOT = "Moving to Node #0\nCurrent State: 15:[30, 25, 10], Operations: []"
BEFORE = ("\nExploring Operation: 30-25=5, Resulting Numbers: [10, 5]\nGenerated Node #0,0: 15:[10, 5] Operation: 30-25=5"
          "\nExploring Operation: 30/10=3, Resulting Numbers: [25, 3]\nGenerated Node #0,1: 15:[25, 3] Operation: 30/10=3\n")
SPAWN = ("<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n"
         "<Start Sub Search 1 at level 1> Moving to Node #0,1\n<End Calling Sub Searches>")


def call(tok, prompt: str, text: str, eos: bool, split_digits: bool = False) -> dict:
    """A recorded call as the runtime writes it; ``split_digits`` samples '15' as '1', '5' (non-canonical)."""
    ids = tok.encode(text, add_special_tokens=False)
    if split_digits:
        fifteen = tok.convert_tokens_to_ids("15")
        ids = [j for i in ids for j in ((tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("5"))
                                        if i == fifteen else (i,))]
    return {"prompt": prompt, "text": text, "token_ids": ids + ([tok.eos_token_id] if eos else []),
            "logprobs": None, "finish_reason": "eos" if eos else "stop"}


def episodes(tok) -> list[Thread]:
    """Episode 0: a parent that spawns two children and continues after the join (4 calls).
    Episode 1: a parent that never spawns (1 call)."""
    parent = Thread("0", ROOT)
    child_a = Thread("0.0", "Moving to Node #0,0\nCurrent State: 15:[10, 5], Operations: ['30-25=5']")
    child_b = Thread("0.1", "Moving to Node #0,1\nCurrent State: 15:[25, 3], Operations: ['30/10=3']")
    parent.spawns = [[child_a, child_b]]
    parent.meta["calls"] = [call(tok, ROOT, BEFORE + SPAWN, eos=False),
                            call(tok, ROOT + BEFORE + JOIN, "15,15 equal: Goal Reached\n", eos=True, split_digits=True)]
    child_a.meta["calls"] = [call(tok, child_a.prompt, "\nExploring Operation: 10+5=15, Resulting Numbers: [15]\n"
                                  "15,15 equal: Goal Reached\n", eos=True)]
    child_b.meta["calls"] = [call(tok, child_b.prompt, "\nExploring Operation: 25-3=22, Resulting Numbers: [22]\n"
                                  "22,15 unequal: No Solution\n", eos=True)]
    lone = Thread("0", ROOT)
    lone.meta["calls"] = [call(tok, ROOT, "\nExploring Operation: 30+25=55, Resulting Numbers: [55, 10]\n", eos=True)]
    return [parent, lone]


def old_shift(seq: int, pos: int) -> float:
    """How far the "old" policy's log-prob sits from the current one: ratios on both sides of the clip."""
    return 0.35 * math.sin(1.3 * seq + 0.7 * pos)


def independent_loss(model, ref, trees, advantages, tok) -> torch.Tensor:
    """The objective written per episode, per call, per sampled token, straight from the recorded calls."""
    total = torch.zeros(())
    seq = 0
    for root, adv in zip(trees, advantages):
        calls = [c for t in root.walk() for c in t.meta["calls"]]
        episode = torch.zeros(())
        for c in calls:
            prompt_ids = tok(c["prompt"])["input_ids"]  # BOS + prompt, as the runtime fed it
            ids = prompt_ids + c["token_ids"]
            logits = model(torch.tensor([ids])).logits[0]
            ref_logits = ref(torch.tensor([ids])).logits[0].detach()
            terms = []
            for j, pos in enumerate(range(len(prompt_ids), len(ids))):  # sampled tokens only
                lp = torch.log_softmax(logits[pos - 1], -1)[ids[pos]]
                old = lp.detach() + old_shift(seq, j)
                ratio = torch.exp(lp - old)
                surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - CLIP, 1 + CLIP))
                d = torch.log_softmax(ref_logits[pos - 1], -1)[ids[pos]] - lp
                terms.append(-surrogate + BETA * (torch.exp(d) - d - 1))
            episode = episode + torch.stack(terms).mean()
            seq += 1
        total = total + episode / len(calls)
    return total / len(trees)


def production_loss(model, ref, trees, advantages, tok, n_micro: int) -> torch.Tensor:
    """The trainer's path: sequences, micro-batches, token_logprobs, grpo_loss; gradients accumulate."""
    seqs = training_sequences(trees, advantages, tok)
    total = torch.zeros(())
    first = 0
    for part in torch.tensor_split(torch.arange(len(seqs)), n_micro):
        mb = make_micro_batch([seqs[i] for i in part.tolist()], tok.pad_token_id)
        logp = token_logprobs(model, mb.inputs, mb.targets)
        with torch.no_grad():
            ref_logp = token_logprobs(ref, mb.inputs, mb.targets)
        shift = torch.zeros_like(logp)
        for row in range(len(part)):
            cols = mb.mask[row].nonzero()[:, 0]
            shift[row, cols] = torch.tensor([old_shift(first + row, j) for j in range(len(cols))])
        loss, _ = grpo_loss(logp, logp.detach() + shift, ref_logp, mb.mask, mb.advantages, mb.weights, CLIP, BETA)
        loss.backward()
        total = total + loss.detach()
        first += len(part)
    return total


@pytest.mark.parametrize("n_micro", [1, 3])
def test_loss_and_gradient_equal_an_explicit_per_token_computation(tok, n_micro):
    model = build_model("tiny", tok, context_length=512, seed=1)
    ref = build_model("tiny", tok, context_length=512, seed=2)
    trees = episodes(tok)
    advantages = [0.8, -1.3]
    seqs = training_sequences(trees, advantages, tok)
    assert [s.weight for s in seqs] == [1 / 8] * 4 + [1 / 2]  # 1 / (episodes x calls of its episode)
    assert seqs[1].n_completion == len(trees[0].meta["calls"][1]["token_ids"])  # the join block is prompt

    expected = independent_loss(model, ref, trees, advantages, tok)
    expected.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    got = production_loss(model, ref, trees, advantages, tok, n_micro)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, want[name], rtol=1e-4, atol=1e-7), name


def test_the_clip_binds_on_both_sides_in_the_hand_built_batch(tok):
    """Guard for the test above: its old log-probs put ratios outside [0.8, 1.2] for both signs of A."""
    trees = episodes(tok)
    seqs = training_sequences(trees, [0.8, -1.3], tok)
    mb = make_micro_batch(seqs, tok.pad_token_id)
    shift = torch.zeros(mb.targets.shape)
    for row in range(len(seqs)):
        cols = mb.mask[row].nonzero()[:, 0]
        shift[row, cols] = torch.tensor([old_shift(row, j) for j in range(len(cols))])
    logp = torch.zeros(mb.targets.shape)
    _, stats = grpo_loss(logp, logp + shift, None, mb.mask, mb.advantages, mb.weights, CLIP, 0.0)
    assert 0 < stats["clipped_tokens"] < stats["tokens"]
    low = (torch.exp(-shift) < 1 - CLIP) & mb.mask
    high = (torch.exp(-shift) > 1 + CLIP) & mb.mask
    assert high[:4].any() and low[4:].any()  # A > 0 clipped above in episode 0, A < 0 below in episode 1


def test_group_advantages_std_and_mean():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.2, 1.1, 0.0, 0.0]])
    std = group_advantages(rewards, "std")
    assert torch.allclose(std[0], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-5)
    assert torch.equal(std[1], torch.zeros(4))  # a group that agrees teaches nothing
    mean = group_advantages(rewards, "mean")
    assert torch.allclose(mean[2], torch.tensor([0.625, 0.525, -0.575, -0.575]))
    with pytest.raises(ValueError, match="group >= 2"):
        group_advantages(torch.ones(3, 1))
    with pytest.raises(ValueError, match="'std' or 'mean'"):
        group_advantages(rewards, "rank")


def test_skipped_and_zero_advantage_episodes_keep_the_other_weights(tok):
    trees = episodes(tok)
    full = training_sequences(trees, [0.5, 0.0], tok)
    lean = training_sequences(trees, [0.5, 0.0], tok, keep_zero_advantage=False)
    skipped = training_sequences(trees, [0.5, None], tok)
    assert [s.weight for s in lean] == [s.weight for s in skipped] == [s.weight for s in full[:4]]
    assert len(full) == 5 and len(lean) == len(skipped) == 4
