import random

import torch

from apr.train.batching import IGNORE, collate, iterate_steps, plan_epoch

LENGTHS = [random.Random(7).randint(5, 300) for _ in range(1000)]


def test_epoch_plan_covers_every_sequence_once_within_the_budget():
    plan = plan_epoch(LENGTHS, token_budget=1200, seed=0, epoch=0, window=256)
    assert sorted(i for b in plan for i in b) == list(range(len(LENGTHS)))
    assert all(len(b) * max(LENGTHS[i] for i in b) <= 1200 for b in plan)
    padded = sum(len(b) * max(LENGTHS[i] for i in b) for b in plan)
    assert padded < 1.1 * sum(LENGTHS)  # length bucketing keeps padding small


def test_epoch_plan_is_a_function_of_seed_and_epoch():
    assert plan_epoch(LENGTHS, 1200, seed=0, epoch=3) == plan_epoch(LENGTHS, 1200, seed=0, epoch=3)
    assert plan_epoch(LENGTHS, 1200, seed=0, epoch=3) != plan_epoch(LENGTHS, 1200, seed=0, epoch=4)
    assert plan_epoch(LENGTHS, 1200, seed=0, epoch=3) != plan_epoch(LENGTHS, 1200, seed=1, epoch=3)


def test_a_sequence_longer_than_the_budget_is_a_batch_of_one():
    plan = plan_epoch([10, 500, 10], token_budget=100, seed=0, epoch=0)
    assert [1] in plan


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_ranks_and_accumulation_see_the_same_batches_per_step():
    steps = 40  # crosses an epoch boundary
    single = _take(iterate_steps(LENGTHS, 4000, 0, grad_accum=2), steps)
    r0 = _take(iterate_steps(LENGTHS, 4000, 0, world_size=2, rank=0), steps)
    r1 = _take(iterate_steps(LENGTHS, 4000, 0, world_size=2, rank=1), steps)
    assert [e for e, _ in single] == [e for e, _ in r0] and single[-1][0] == 1
    assert all(s == a + b for (_, s), (_, a), (_, b) in zip(single, r0, r1))


def test_starting_mid_run_replays_the_same_steps():
    full = _take(iterate_steps(LENGTHS, 4000, 0, grad_accum=3), 50)  # about 13 steps per epoch
    assert _take(iterate_steps(LENGTHS, 4000, 0, grad_accum=3, start_step=37), 13) == full[37:]


def test_collate_shifts_pads_right_and_masks_prompt_targets():
    seqs, n_prompt = [[1, 10, 11, 20, 21, 2], [1, 12, 22, 2]], [3, 2]
    every = collate(seqs, n_prompt, pad_id=3)
    assert every.inputs.tolist() == [[1, 10, 11, 20, 21], [1, 12, 22, 3, 3]]
    assert every.targets.tolist() == [[10, 11, 20, 21, 2], [12, 22, 2, IGNORE, IGNORE]]
    assert (every.n_tokens, every.n_targets) == (8, 8)
    completion = collate(seqs, n_prompt, pad_id=3, loss_on="completion")
    assert completion.targets.tolist() == [[IGNORE, IGNORE, 20, 21, 2], [IGNORE, 22, 2, IGNORE, IGNORE]]
    assert completion.n_targets == 5 and torch.equal(completion.inputs, every.inputs)


def test_heap_fragmentation_guard_applies_on_glibc():
    import platform

    from apr.train.memory import limit_heap_fragmentation

    applied = limit_heap_fragmentation()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
