"""Length-bucketed batches under a token budget, and the collation that turns them into tensors.

Why buckets and not packing: APR threads vary from tens to thousands of tokens. Sorting a shuffled
window by length and cutting it into batches whose *padded* size fits a token budget wastes little
padding, keeps every sequence in its own row (no cross-sequence attention, no special mask), and
lets the plain causal SDPA kernel run. TRL's ``packing=True`` measured ~6x slower on our CPU.

The plan for an epoch is a pure function of (lengths, budget, seed, epoch), so every rank computes
the same plan without communication, and a resumed run replays exactly the batches it would have
seen: resuming needs only the step number.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from apr.train.config import LossOn

IGNORE = -100  # target id that cross-entropy skips


def plan_epoch(lengths: Sequence[int], token_budget: int, seed: int, epoch: int,
               window: int = 4096) -> list[list[int]]:
    """Shuffle, sort each window of ``window`` sequences by length, cut greedily, shuffle the batches.

    A batch's cost is ``len(batch) * longest``; it never exceeds ``token_budget`` unless a single
    sequence is longer than the budget (then it is a batch of one).
    """
    rng = random.Random(f"apr-sft:{seed}:{epoch}")  # str seeds hash deterministically across runs
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        batch: list[int] = []
        for i in sorted(order[start:start + window], key=lengths.__getitem__):  # ascending: lengths[i] is the max
            if batch and lengths[i] * (len(batch) + 1) > token_budget:
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def iterate_steps(lengths: Sequence[int], token_budget: int, seed: int, *, world_size: int = 1, rank: int = 0,
                  grad_accum: int = 1, start_step: int = 0) -> Iterator[tuple[int, list[list[int]]]]:
    """Yield ``(epoch, micro_batches)``: for each step from ``start_step`` on, this rank's ``grad_accum`` batches.

    Step ``s`` uses batches ``[s*W*A, (s+1)*W*A)`` of the epoch plan, rank ``r`` the slice ``r*A..(r+1)*A``.
    So 2 ranks x 1 micro-batch see the same batches per step as 1 rank x 2 micro-batches: DDP and
    gradient accumulation are interchangeable. An epoch's last ``< W*A`` batches are skipped.
    """
    per_step = world_size * grad_accum
    step = 0
    for epoch in itertools.count():
        plan = plan_epoch(lengths, token_budget, seed, epoch)
        n_steps = len(plan) // per_step
        if n_steps == 0:
            raise ValueError(f"{len(plan)} batches per epoch cannot fill one step of {world_size} ranks x "
                             f"{grad_accum} micro-batches; lower --tokens-per-batch or --grad-accum")
        if step + n_steps <= start_step:  # skip whole epochs without slicing them
            step += n_steps
            continue
        for s in range(max(0, start_step - step), n_steps):
            first = s * per_step + rank * grad_accum
            yield epoch, plan[first:first + grad_accum]
        step += n_steps


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, T) token ids, right-padded
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE where no loss
    n_tokens: int  # real (non-pad) input tokens: the throughput count
    n_targets: int  # positions that carry loss


def collate(seqs: Sequence[Sequence[int]], n_prompt: Sequence[int], pad_id: int, loss_on: LossOn = "all") -> Batch:
    """Shift each ``BOS + prompt + completion + EOS`` sequence into inputs and next-token targets.

    Padding goes on the right, and no attention mask is built: under a causal mask a real token never
    attends to a later pad, so the fast ``is_causal`` attention path gives exact results.
    With ``loss_on="completion"``, targets that are prompt tokens are ignored (the first target is
    the first completion token); with ``"all"`` every token after BOS carries loss, as in the paper.
    """
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for row, (ids, n_p) in enumerate(zip(seqs, n_prompt)):
        ids_t = torch.as_tensor(ids, dtype=torch.long)
        inputs[row, :len(ids) - 1] = ids_t[:-1]
        targets[row, :len(ids) - 1] = ids_t[1:]
        if loss_on == "completion":
            targets[row, :n_p - 1] = IGNORE
    n_tokens = sum(len(s) - 1 for s in seqs)
    return Batch(inputs, targets, n_tokens, int((targets != IGNORE).sum()))
