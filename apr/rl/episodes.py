"""From rolled-out thread trees to weighted training sequences (spec §7.2, "Episode → sequences").

An episode is one problem's whole tree. Every LM call the runtime made in it (the parent's first
call, each child, each parent continuation after a join) becomes one training sequence: the tokens
the model saw, then the tokens it sampled. Only the sampled tokens carry loss, so prompts and the
join blocks the orchestrator inserted are never trained. A call is a thread segment
(``Thread.segments()``) with two differences, both text the model did not write: a segment that
ends in a spawn block ends with a newline the orchestrator appended (the call stopped at the
marker), and where the runtime forced a spawn after a model-written join marker the segment took
two calls, the forced marker sitting in the second call's prompt.

The runtime records each call's prompt text and sampled token ids (``SamplingParams(logprobs=True)``).
The prompt is tokenized once, the way the runtime tokenized it, and the sampled ids are kept as they
are: re-encoding the completion text would give other tokens wherever the model sampled a
non-canonical split, and the trainer would then score tokens the model never produced. (An
OpenAI-compatible server returns text, which its backend re-encodes: exact only where the model
sampled canonical splits, as a trained model almost always does.)

Every sequence carries its episode's advantage and the weight ``1 / (episodes * sequences in its
episode)``, which makes each episode count once whatever its number of threads (the paper divides
each sequence's term by its episode's sequence count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from apr.threads import Thread
from apr.tokenizer import encode_segment

AdvantageScale = Literal["std", "mean"]


@dataclass
class TrainSequence:
    ids: list[int]  # BOS + prompt + sampled completion (EOS included when sampled)
    n_prompt: int  # BOS + prompt tokens: no loss on these
    episode: int
    thread_id: str
    runtime_logprobs: list[float] | None  # what the sampler reported per completion token, if aligned
    advantage: float = 0.0
    weight: float = 0.0

    @property
    def n_completion(self) -> int:
        return len(self.ids) - self.n_prompt


def call_sequence(call: dict[str, Any], tok: PreTrainedTokenizerBase, episode: int, thread_id: str) -> TrainSequence:
    """One recorded LM call as a training sequence."""
    if "prompt" not in call:
        raise ValueError("thread calls carry no prompt text: roll out with SamplingParams(logprobs=True)")
    head, n_prompt = encode_segment(tok, call["prompt"], "")
    completion = list(call["token_ids"])
    if call["finish_reason"] == "eos" and completion[-1:] != [tok.eos_token_id]:
        completion.append(tok.eos_token_id)  # a server returns text: its re-encoded ids lack the EOS it stopped on
    logprobs = call.get("logprobs")
    aligned = logprobs if logprobs is not None and len(logprobs) == len(completion) else None
    return TrainSequence(head[:n_prompt] + completion, n_prompt, episode, thread_id, aligned)


def episode_sequences(root: Thread, tok: PreTrainedTokenizerBase, episode: int) -> list[TrainSequence]:
    """Every call of every thread that sampled at least one token, parent before children."""
    seqs = [call_sequence(call, tok, episode, t.id) for t in root.walk() for call in t.meta.get("calls", [])]
    return [s for s in seqs if s.n_completion > 0]


def group_advantages(rewards: torch.Tensor, scale: AdvantageScale = "std", eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages for ``rewards`` of shape (prompts, group): reward minus its group's mean,
    divided by the group's (population) std for ``"std"`` (the paper) or not for ``"mean"``
    (ThreadWeaver; std-scaling blows tiny reward differences up to +-1). Equal groups get 0."""
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must have shape (prompts, group >= 2), got {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "mean":
        return centred
    if scale == "std":
        return centred / (rewards.std(dim=1, unbiased=False, keepdim=True) + eps)
    raise ValueError(f"advantage scale must be 'std' or 'mean', got {scale!r}")


def training_sequences(trees: list[Thread], advantages: list[float | None], tok: PreTrainedTokenizerBase,
                       keep_zero_advantage: bool = True) -> list[TrainSequence]:
    """All episodes' sequences with advantage and weight set; an advantage of None skips its episode.

    Weights count every episode (skipped and zero-advantage ones too), so dropping zero-advantage
    sequences, which a KL-free loss allows, changes no other sequence's weight.
    """
    if len(trees) != len(advantages):
        raise ValueError(f"{len(trees)} trees but {len(advantages)} advantages")
    out: list[TrainSequence] = []
    for e, (root, adv) in enumerate(zip(trees, advantages)):
        if adv is None or (adv == 0 and not keep_zero_advantage):
            continue
        seqs = episode_sequences(root, tok, e)
        for s in seqs:
            s.advantage, s.weight = adv, 1.0 / (len(trees) * len(seqs))
        out += seqs
    return out
