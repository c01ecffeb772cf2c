"""Post-join continuation groups: which states are resampled, how samples are drawn, scored and weighed."""

from __future__ import annotations

import asyncio

import pytest
import torch

from apr import grammar as g
from apr.countdown.problems import Problem
from apr.eval.metrics import score_tree
from apr.rl.continuations import JoinState, join_sequences, join_states, sample_continuations
from apr.rl.rollout import EmbeddedRollouts, solve_config
from apr.runtime.backend import Generation, SamplingParams
from apr.runtime.limits import STOPS, Limits


def demo_problem(demo) -> Problem:
    state = g.parse_prompt(demo.prompt)
    return Problem(id="demo", nums=tuple(state.nums), target=state.target)


def split_at_join(demo) -> tuple[str, str]:
    """The demonstration root's context up to the end of its join block, and what it wrote after."""
    assert demo.spans[-1].kind == "gen" and demo.spans[-2].kind == "join"
    after = demo.spans[-1].text
    return demo.context()[: -len(after)], after


def generation(tok, text: str, finish: str = "eos") -> Generation:
    ids = tok(text, add_special_tokens=False).input_ids + ([tok.eos_token_id] if finish == "eos" else [])
    return Generation(text, ids, finish, prompt_tokens=0, logprobs=[-0.5] * len(ids))


class RecordingBackend:
    """Answers every call with a fixed text and records what it was asked."""

    context_length = 1024

    def __init__(self):
        self.calls: list[tuple[str, str, SamplingParams, str | None]] = []
        self.released: list[str] = []

    async def generate(self, session, prompt, params, fork_from=None):
        self.calls.append((session, prompt, params, fork_from))
        await asyncio.sleep(0)
        return Generation(f"{session}\n", [1], "eos", prompt_tokens=len(prompt))

    def release(self, session):
        self.released.append(session)

    def count_tokens(self, text):
        return len(text)


def test_sample_continuations_prefills_once_then_forks_with_distinct_seeds_and_releases_everything():
    backend = RecordingBackend()
    params = SamplingParams(temperature=0.7, seed=11, logprobs=True)
    out = asyncio.run(sample_continuations(backend, ["A", "B"], 3, params))
    assert [[gen.text for gen in gens] for gens in out] == [["join-0-0\n", "join-0-1\n", "join-0-2\n"],
                                                           ["join-1-0\n", "join-1-1\n", "join-1-2\n"]]
    by_session = {session: (prompt, p, fork) for session, prompt, p, fork in backend.calls}
    for i, prompt in enumerate("AB"):
        first = f"join-{i}-0"
        assert by_session[first][0] == prompt and by_session[first][2] is None
        assert all(by_session[f"join-{i}-{j}"][2] == first for j in (1, 2))
    # every sample of a step gets its own seed, and the spawn marker still stops a call
    assert len({p.seed for _, p, _ in by_session.values()}) == 6
    assert all(set(STOPS) <= set(p.stop) and p.temperature == 0.7 and p.logprobs for _, p, _ in by_session.values())
    assert sorted(backend.released) == sorted(by_session)
    # the same seed gives the same seeds back: a resumed run draws the same samples
    again = RecordingBackend()
    asyncio.run(sample_continuations(again, ["A", "B"], 3, params))
    assert {s: p.seed for s, _, p, _ in again.calls} == {s: p.seed for s, (_, p, _) in by_session.items()}


def test_join_sequences_scores_each_sample_and_gives_group_relative_advantages(tok, demo):
    problem = demo_problem(demo)
    before, after = split_at_join(demo)
    right, wrong = generation(tok, after), generation(tok, "Moving to Node #0\n")
    states = [JoinState(episode=1, prompt=before), JoinState(episode=3, prompt=before)]
    samples = [[right, wrong, right, wrong], [right, right, right, right]]  # the second group is flat
    joins = join_sequences(states, samples, [problem] * 4, tok, n_episodes=4, scale="std", weight=2.0)
    assert (joins.groups, joins.trained, joins.accuracy) == (2, 1, 6 / 8)
    assert [s.advantage for s in joins.sequences] == pytest.approx([1, -1, 1, -1], abs=1e-4)
    assert all(s.weight == pytest.approx(2.0 / (4 * 4)) and s.episode == 1 for s in joins.sequences)
    prompt_ids = tok(before, add_special_tokens=False).input_ids
    first = joins.sequences[0]
    assert first.ids[first.n_prompt:] == right.token_ids  # the sampled ids, EOS included, carry the loss
    assert first.n_prompt == len(prompt_ids) + 1  # BOS + the post-join context: no loss there
    assert first.runtime_logprobs == right.logprobs
    mean = join_sequences(states[:1], samples[:1], [problem] * 4, tok, n_episodes=4, scale="mean", weight=1.0)
    assert [s.advantage for s in mean.sequences] == pytest.approx([0.5, -0.5, 0.5, -0.5])


def test_join_sequences_drops_a_group_in_which_a_sample_spawned_again(tok, demo):
    before, after = split_at_join(demo)
    spawned = generation(tok, f"Moving to Node #0\n{g.SPAWN_OPEN}\n", finish="stop")
    joins = join_sequences([JoinState(0, before)], [[generation(tok, after), spawned]], [demo_problem(demo)], tok,
                           n_episodes=1, scale="std", weight=1.0)
    assert (joins.groups, joins.trained, joins.sequences, joins.accuracy) == (1, 0, [], 0.5)


def test_rolled_out_episodes_give_join_states_and_engine_continuations(tok, demo, sharp_model):
    """On the engine: the states are the roots' post-join contexts, only where a child solved the
    problem, and the continuations are seeded samples with the sampler's log-probs."""
    problem = demo_problem(demo)
    rollouts = EmbeddedRollouts(sharp_model, tok, "fp32", max_slots=32)
    sampling = solve_config(Limits(), 300, seed=5, temperature=1.0)
    trees = rollouts.solve([demo.prompt] * 6, sampling)
    scores = [score_tree(t, problem) for t in trees]
    states = join_states(trees, scores)
    assert {s.episode for s in states} == {e for e, (t, s) in enumerate(zip(trees, scores))
                                           if s.solved_by_child and any(sp.kind == "join" for sp in t.spans)}
    assert states, "the sharp model's children solve the demonstration's problem"
    for s in states:
        root = trees[s.episode]
        assert s.prompt.startswith(demo.prompt) and s.prompt.endswith(g.JOIN_CLOSE + "\n")
        assert root.context().startswith(s.prompt)
    gens = rollouts.continue_from([s.prompt for s in states], 3, sampling.sampling)
    assert [len(x) for x in gens] == [3] * len(states)
    for x in gens:
        for gen in x:
            assert gen.token_ids and len(gen.logprobs) == len(gen.token_ids)
            assert all(lp <= 0 for lp in gen.logprobs)
    again = rollouts.continue_from([s.prompt for s in states], 3, sampling.sampling)
    assert [[gen.token_ids for gen in x] for x in again] == [[gen.token_ids for gen in x] for x in gens]
    joins = join_sequences(states, gens, [problem] * len(trees), tok, len(trees), "std", 1.0)
    assert 0 <= joins.accuracy <= 1 and joins.trained <= joins.groups == len(states)
    assert all(torch.isfinite(torch.tensor(s.advantage)) for s in joins.sequences)
