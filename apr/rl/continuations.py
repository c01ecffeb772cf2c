"""Extra GRPO groups on the root's continuation after a join, the call that decides most failures.

On the bundled task most wrong episodes had a child with a verified answer that the root then
copied wrongly after the join (docs/training.md). The episode's reward reaches that continuation
only through its ~100 of the episode's ~1,100 sampled tokens, and it shares its advantage with
every child's search. With ``join_samples = K`` the trainer samples K more continuations from the
same post-join root context of each episode in which a child reached the goal, rewards each by
verifying the root's answer, and trains them with the group-relative advantage among the K. The
context is fixed, so the advantage is the continuation's own: a Monte-Carlo estimate of that
state's value, as VinePPO does for intermediate states.

A continuation that starts another spawn would need children to score it; such groups are
dropped. So are groups whose K rewards are equal: their policy-gradient term is zero, and the KL
term of the same call is already in the batch through the episode that contains it.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, replace

import torch
from transformers import PreTrainedTokenizerBase

from apr import grammar as g
from apr.countdown.task import Problem, verify_trace
from apr.eval.metrics import SampleScore
from apr.rl.episodes import AdvantageScale, TrainSequence, call_sequence, group_advantages
from apr.runtime.backend import Backend, Generation, SamplingParams
from apr.runtime.limits import STOPS
from apr.threads import Thread


@dataclass
class JoinState:
    """The root's context right after a join, in an episode whose children found an answer."""

    episode: int
    prompt: str


def join_states(trees: list[Thread], scores: list[SampleScore]) -> list[JoinState]:
    """Each episode's last post-join root context, where a child's answer was verified."""
    states = []
    for e, (root, score) in enumerate(zip(trees, scores)):
        calls = root.meta.get("calls", [])
        prompt = calls[-1].get("prompt", "") if calls else ""
        # A root cut by a limit right after its join made no call there: its last prompt is older.
        if score.solved_by_child and prompt.endswith(g.JOIN_CLOSE + "\n"):
            states.append(JoinState(e, prompt))
    return states


async def sample_continuations(backend: Backend, prompts: list[str], k: int, params: SamplingParams
                               ) -> list[list[Generation]]:
    """``k`` samples per prompt. The first prefills the prompt; the others fork its cache (on a
    backend that keeps one) and decode together. Seeds come from ``params.seed``, prompt and sample."""

    def seeded(i: int, j: int) -> SamplingParams:
        seed = None if params.seed is None else zlib.crc32(f"{params.seed}/join/{i}/{j}".encode())
        return replace(params, seed=seed, stop=tuple(dict.fromkeys(STOPS + params.stop)))

    async def one(i: int, prompt: str) -> list[Generation]:
        sessions = [f"join-{i}-{j}" for j in range(k)]
        try:
            first = await backend.generate(sessions[0], prompt, seeded(i, 0))
            rest = await asyncio.gather(*(backend.generate(sessions[j], prompt, seeded(i, j), fork_from=sessions[0])
                                          for j in range(1, k)))
            return [first, *rest]
        finally:
            for s in sessions:
                backend.release(s)

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


@dataclass
class JoinGroups:
    sequences: list[TrainSequence]
    groups: int  # states sampled
    trained: int  # groups with unequal rewards (the others are dropped)
    accuracy: float  # share of all continuation samples that were verified correct


def join_sequences(states: list[JoinState], samples: list[list[Generation]], problems: list[Problem],
                   tok: PreTrainedTokenizerBase, n_episodes: int, scale: AdvantageScale, weight: float
                   ) -> JoinGroups:
    """Score the samples and turn every group with unequal rewards into training sequences.

    A sample weighs ``weight / (n_episodes * k)``: with ``weight = 1`` a group of K continuations
    counts as much in the loss as one whole episode.
    """
    kept: list[TrainSequence] = []
    correct = total = trained = 0
    for state, gens in zip(states, samples):
        problem = problems[state.episode]
        rewards = [float(verify_trace(state.prompt + gen.text, list(problem.nums), problem.target).ok) for gen in gens]
        correct, total = correct + int(sum(rewards)), total + len(gens)
        if any(gen.finish_reason == "stop" for gen in gens) or len(set(rewards)) < 2:
            continue  # a new spawn cannot be scored alone; equal rewards carry no policy gradient
        trained += 1
        advantages = group_advantages(torch.tensor([rewards]), scale)[0].tolist()
        for j, (gen, adv) in enumerate(zip(gens, advantages)):
            call = {"prompt": state.prompt, "token_ids": gen.token_ids, "finish_reason": gen.finish_reason,
                    "logprobs": gen.logprobs}
            seq = call_sequence(call, tok, state.episode, f"0/join{j}")
            if seq.n_completion == 0:
                continue
            seq.advantage, seq.weight = adv, weight / (n_episodes * len(gens))
            kept.append(seq)
    return JoinGroups(kept, len(states), trained, correct / total if total else 0.0)
