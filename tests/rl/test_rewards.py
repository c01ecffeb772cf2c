"""Rewards: correctness first; the parallelism bonus only for correct answers; penalties for everyone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from apr.eval.metrics import SampleScore
from apr.rl.rewards import Rewards, episode_reward

# A parent of 300 decoded tokens whose one spawn ran children of 500 and 200: 1000 decoded, 800 sequential.
SPAWNED = SampleScore(correct=True, failure=None, answer=None, total_tokens=1500, generated_tokens=1000,
                      sequential_tokens=800, longest_context=900, n_threads=3, n_spawns=1, children_per_spawn=2.0,
                      latency_s=0.0, finish_reason="eos")


def test_binary_by_default():
    assert episode_reward(SPAWNED, Rewards()) == 1.0
    assert episode_reward(replace(SPAWNED, correct=False), Rewards()) == 0.0


def test_parallelism_bonus_is_gated_by_correctness_and_clipped():
    assert episode_reward(SPAWNED, Rewards(efficiency=0.5)) == pytest.approx(1.1)  # 0.5 * (1 - 800/1000)
    assert episode_reward(SPAWNED, Rewards(efficiency=5.0)) == pytest.approx(1.2)  # capped at 0.2
    assert episode_reward(replace(SPAWNED, correct=False), Rewards(efficiency=5.0)) == 0.0
    sequential = replace(SPAWNED, sequential_tokens=1000, n_threads=1, n_spawns=0)
    assert episode_reward(sequential, Rewards(efficiency=0.5)) == 1.0


def test_penalties_apply_to_every_episode():
    r = Rewards(thread_penalty=0.05, length_penalty=0.1)
    assert episode_reward(SPAWNED, r) == pytest.approx(1 - 2 * 0.05 - 0.1)
    assert episode_reward(replace(SPAWNED, correct=False), r) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="length_penalty must be >= 0"):
        Rewards(length_penalty=-1)
